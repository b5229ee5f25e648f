"""GenerateInsights' rules: each fires on the histories it should and stays quiet on benign ones,
with bounded confidences, evidence inside the right interactions, ranked actions, determinism."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ai_orchestration.insights import (
    CompetitorList,
    Direction,
    Evidence,
    InsightDraft,
    InsightKind,
    InsightRules,
    Interaction,
    InteractionKind,
    ScoredInteraction,
    Sentiment,
    SentimentScorer,
    SignalExtractor,
    Signals,
    decide_insights,
    label_of,
    select_insights,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
COMPETITORS = CompetitorList.from_mapping({"Salesforce": ("SFDC", "Sales Cloud")})
IN, OUT, NOTE = Direction.INBOUND, Direction.OUTBOUND, Direction.INTERNAL

HAPPY = "Thanks for the demo yesterday, the team liked the new reports."
ADMIN = "Could you move our call to Thursday afternoon?"
NOTES = "Attached are the notes from the meeting on Tuesday."
CHURN = "Unfortunately we are not renewing in June. The budget was cut."
ESCALATION = "I want to speak to your manager. The export has failed for a week."
LEGAL = (
    "The sync is still broken and this is unacceptable. If the data is lost we will take "
    "legal action."
)
STILL_UNHAPPY = "Your fix did not help. The export fails every morning and the team is frustrated."
FIXED = "Thanks, that fixed it. Great support, the team is happy again!"
REPLY = "Sorry about this; our engineers are on it and we will update you tomorrow."
EXPANSION = "We would like to add 25 more seats for the Berlin office."
UPSELL = "We are interested in the Enterprise plan."
REFERRAL = "Happy to be a reference for other customers."


@pytest.fixture(scope="module")
def extractor() -> SignalExtractor:
    return SignalExtractor(scorer=SentimentScorer())


class History:
    """Interactions built from real texts with the real extractor; keeps the texts to check
    that evidence spans quote the right words."""

    def __init__(self, extractor: SignalExtractor) -> None:
        self._extractor = extractor
        self.items: list[ScoredInteraction] = []
        self.texts: dict[str, str] = {}

    def add(
        self,
        days_ago: float,
        body: str,
        direction: Direction = IN,
        kind: InteractionKind = InteractionKind.EMAIL,
    ) -> str:
        interaction_id = f"i{len(self.items)}"
        interaction = Interaction(
            interaction_id=interaction_id,
            customer_id="acct-7",
            kind=kind,
            direction=direction,
            occur_time=NOW - timedelta(days=days_ago),
            subject="",
            body=body,
        )
        signals = self._extractor.extract(interaction, COMPETITORS)
        self.items.append(ScoredInteraction.of(interaction, signals))
        self.texts[interaction_id] = interaction.text
        return interaction_id

    def decide(self, **knobs: object) -> list[InsightDraft]:
        drafts = decide_insights(self.items, now=NOW, rules=InsightRules(**knobs))  # type: ignore[arg-type]
        for draft in drafts:
            assert 0.0 <= draft.confidence <= 1.0
            for evidence in draft.evidence:
                text = self.texts[evidence.interaction_id]
                assert 0 <= evidence.start < evidence.end <= len(text)
        return drafts

    def quotes(self, draft: InsightDraft) -> list[tuple[str, str]]:
        return [
            (e.interaction_id, self.texts[e.interaction_id][e.start : e.end])
            for e in draft.evidence
        ]


@pytest.fixture
def history(extractor: SignalExtractor) -> History:
    return History(extractor)


def by_code(drafts: Sequence[InsightDraft]) -> dict[str, InsightDraft]:
    codes = [d.code for d in drafts]
    assert len(codes) == len(set(codes))
    return {d.code: d for d in drafts}


def codes(drafts: Sequence[InsightDraft], kind: InsightKind | None = None) -> list[str]:
    return [d.code for d in drafts if kind is None or d.kind is kind]


def point(
    interaction_id: str, days_ago: float, score: float, direction: Direction = IN
) -> ScoredInteraction:
    signals = Signals(
        sentiment=Sentiment(score, label_of(score), 0.9),
        competitors=(),
        pricing=True,  # keeps the pricing rule quiet in these trend histories
        churn_intent=False,
        escalation=False,
        legal_threat=False,
        mentions=(),
    )
    return ScoredInteraction(
        interaction_id,
        NOW - timedelta(days=days_ago),
        InteractionKind.EMAIL,
        direction,
        signals,
        80,
    )


# --- a benign customer ---------------------------------------------------------------------


def test_a_benign_history_yields_no_risk_and_no_action(history: History) -> None:
    history.add(12, HAPPY)
    history.add(11, "Great, glad it helped!", OUT)
    history.add(5, ADMIN)
    history.add(4, "Thursday at 3pm works, see you then.", OUT)
    history.add(2, NOTES, NOTE, InteractionKind.NOTE)
    assert history.decide() == []


def test_nothing_from_nothing() -> None:
    assert decide_insights([], now=NOW) == []


# --- risks ------------------------------------------------------------------------------------


def test_churn_intent_cites_the_words(history: History) -> None:
    first = history.add(20, CHURN)
    history.add(19, REPLY, OUT)
    second = history.add(3, "We are looking at other vendors for next year.")
    churn = by_code(history.decide())["churn_intent"]
    assert churn.kind is InsightKind.RISK
    assert churn.confidence == pytest.approx(1 - 0.4**2)
    assert history.quotes(churn) == [
        (first, "not renewing"),
        (second, "looking at other vendors"),
    ]
    assert dict(churn.facts) == {
        "interactions": 2,
        "mentions": 2,
        "terms": "not renewing, looking elsewhere",
        "days_since_latest": 3,
        "lookback_days": 90,
    }
    assert churn.title == "Churn intent"
    assert churn.description == (
        "The customer spoke of leaving in 2 interactions in the last 90 days "
        "(not renewing, looking elsewhere); the latest 3 days ago."
    )


def test_churn_intent_stays_quiet_on_reassurance_our_words_and_old_news(history: History) -> None:
    history.add(200, CHURN)  # beyond the 90-day lookback
    history.add(10, "We are not cancelling, don't worry. The team is happy with the product.")
    history.add(9, "Understood. If you ever want to cancel, tell us why first.", OUT)
    assert "churn_intent" not in codes(history.decide())


def test_an_unanswered_escalation_is_unresolved(history: History) -> None:
    escalation = history.add(4, ESCALATION)
    risk = by_code(history.decide())["unresolved_escalation"]
    assert risk.confidence == 0.5
    assert history.quotes(risk) == [(escalation, "speak to your manager")]
    assert (risk.facts["unanswered"], risk.facts["legal_threats"]) == (1, 0)
    assert risk.title == "Unresolved escalation"


def test_an_escalation_answered_and_thanked_for_is_resolved(history: History) -> None:
    history.add(4, ESCALATION)
    history.add(3, REPLY, OUT)
    history.add(1, FIXED)
    assert "unresolved_escalation" not in codes(history.decide())


def test_an_escalation_stays_open_while_the_customer_is_still_negative(history: History) -> None:
    history.add(6, ESCALATION)
    history.add(5, REPLY, OUT)
    history.add(2, STILL_UNHAPPY)
    risk = by_code(history.decide())["unresolved_escalation"]
    assert (risk.facts["escalations"], risk.facts["unanswered"]) == (1, 0)
    history.add(1, "We rolled back the change; the export works again.", OUT)
    assert "unresolved_escalation" not in codes(history.decide())  # we had the last word


def test_a_legal_threat_raises_confidence_and_comes_first(history: History) -> None:
    legal = history.add(2, LEGAL)
    drafts = history.decide()
    risk = by_code(drafts)["unresolved_escalation"]
    assert risk.confidence == 0.7
    assert risk.title == "Unresolved escalation with a legal threat"
    assert (legal, "legal action") in history.quotes(risk)
    actions = [d for d in drafts if d.kind is InsightKind.NEXT_BEST_ACTION]
    assert [a.code for a in actions][:2] == ["nba_escalate_legal", "nba_reply_escalation"]
    assert actions[0].title == "Escalate to the account manager and legal today"
    assert actions[0].evidence == risk.evidence


def test_no_recent_activity(history: History) -> None:
    last = history.add(30, HAPPY)
    history.add(2, NOTES, NOTE, InteractionKind.NOTE)  # internal notes are not activity
    drafts = history.decide()
    risk = by_code(drafts)["no_recent_activity"]
    assert risk.confidence == pytest.approx(0.5 + 0.45 * 9 / 21, abs=1e-4)
    assert risk.evidence == (Evidence(last, 0, len(history.texts[last])),)
    assert risk.title == "No activity for 30 days"
    assert risk.description == (
        "The last interaction was an inbound email 30 days ago; "
        "21 days without one count as a risk."
    )
    assert "nba_check_in" in codes(drafts)
    history.add(1, ADMIN)
    assert "no_recent_activity" not in codes(history.decide())


def test_silence_confidence_is_capped(history: History) -> None:
    history.add(400, HAPPY)
    assert by_code(history.decide())["no_recent_activity"].confidence == 0.95


def test_unanswered_outbound(history: History) -> None:
    history.add(20, HAPPY)
    sent = [history.add(days, f"Following up on the proposal ({days})", OUT) for days in (15, 9, 3)]
    risk = by_code(history.decide())["unanswered_outbound"]
    assert risk.confidence == 0.5
    assert [e.interaction_id for e in risk.evidence] == sent
    assert dict(risk.facts) == {"outbound": 3, "threshold": 3, "days_since_reply": 20}
    assert risk.description == "We sent 3 messages since the customer last spoke, 20 days ago."
    history.add(2, "Another nudge about the proposal.", OUT)
    assert by_code(history.decide())["unanswered_outbound"].confidence == 0.75


def test_outbound_answered_or_too_few_is_no_risk(history: History) -> None:
    history.add(20, HAPPY)
    history.add(15, "Following up on the proposal.", OUT)
    history.add(9, "Following up again.", OUT)
    assert "unanswered_outbound" not in codes(history.decide())
    history.add(5, "A call about the proposal.", OUT, InteractionKind.CALL)  # they picked up
    history.add(3, "Sending the summary of our call.", OUT)
    assert "unanswered_outbound" not in codes(history.decide())


def test_pricing_not_discussed_late_in_the_cycle(history: History) -> None:
    for days in (40, 33, 26, 19, 12, 5):
        history.add(
            days, HAPPY if days % 2 else "Thanks, glad to hear it.", IN if days % 2 else OUT
        )
    drafts = history.decide()
    risk = by_code(drafts)["pricing_not_discussed"]
    assert risk.confidence == 0.5
    assert len(risk.evidence) == 5  # the latest interactions, where pricing should have come up
    assert risk.description == "Pricing has not come up in 6 interactions over 40 days."
    assert "nba_share_pricing" in codes(drafts)


def test_pricing_rule_quiet_early_or_when_pricing_came_up(history: History) -> None:
    for days in (25, 20, 15, 10, 5, 1):
        history.add(days, HAPPY)
    assert "pricing_not_discussed" not in codes(history.decide())  # only 25 days in
    history.add(45, "Could you send us a quote for the renewal?")
    assert "pricing_not_discussed" not in codes(history.decide())


def test_competitor_mentioned(history: History) -> None:
    mention = history.add(6, "Sales Cloud offered us a lower price last week.")
    drafts = history.decide()
    risk = by_code(drafts)["competitor_mentioned"]
    assert history.quotes(risk) == [(mention, "Sales Cloud")]
    assert risk.title == "Competitor mentioned: Salesforce"
    assert "nba_competitive_comparison" in codes(drafts)


# --- sentiment ----------------------------------------------------------------------------------


def test_sentiment_trend_on_hand_computed_points() -> None:
    history = [point(f"m{i}", 25 - 5 * i, 0.6 - 0.2 * i) for i in range(6)]  # 0.6 .. -0.4
    history.append(point("ours", 1, 0.9, OUT))  # our reply does not flatten the trend
    drafts = {d.code: d for d in decide_insights(history, now=NOW)}
    trend = drafts["sentiment_trend"]
    assert trend.kind is InsightKind.SENTIMENT_TREND
    assert trend.facts["window"] == "last_6_messages"
    assert trend.facts["direction"] == "declining"
    assert trend.facts["slope"] == pytest.approx(-0.2)
    assert trend.facts["change"] == pytest.approx(-1.0)
    assert trend.facts["last_30_days_slope"] == pytest.approx(-0.04)  # -0.2 per 5 days
    assert trend.facts["last_90_days_points"] == 6
    assert trend.confidence == pytest.approx(6 / 9, abs=1e-4)
    assert [e.interaction_id for e in trend.evidence] == ["m1", "m2", "m3", "m4", "m5"]
    assert trend.title == "Sentiment declining over the last 6 messages"
    decline = drafts["sentiment_decline"]
    assert decline.facts["window"] == "last_6_messages"
    assert "nba_address_decline" in drafts


def test_a_stable_trend_is_reported_but_is_no_risk() -> None:
    history = [point(f"m{i}", 20 - 4 * i, s) for i, s in enumerate([0.3, 0.35, 0.3, 0.32])]
    drafts = {d.code: d for d in decide_insights(history, now=NOW)}
    assert drafts["sentiment_trend"].facts["direction"] == "stable"
    assert drafts["sentiment_trend"].title == "Sentiment stable over the last 4 messages"
    assert "sentiment_decline" not in drafts


def test_no_trend_from_two_messages() -> None:
    history = [point("a", 10, 0.8), point("b", 1, -0.8)]
    assert "sentiment_trend" not in codes(decide_insights(history, now=NOW))


def test_a_drop_against_the_customers_own_baseline() -> None:
    history = [
        *(point(f"base{i}", 200 - 10 * i, 0.6) for i in range(6)),
        *(point(f"new{i}", 12 - 2 * i, 0.2) for i in range(6)),  # flat, but well below usual
    ]
    drafts = {d.code: d for d in decide_insights(history, now=NOW)}
    decline = drafts["sentiment_decline"]
    assert decline.facts["window"] == "baseline"
    assert decline.facts["drop"] == pytest.approx(0.4)
    assert decline.confidence == pytest.approx(6 / 9 * 0.4 / 0.6, abs=1e-4)
    assert [e.interaction_id for e in decline.evidence] == [f"new{i}" for i in range(1, 6)]
    assert decline.description == (
        "The last 6 messages average +0.20 against +0.60 over the 6 messages before them, "
        "a drop of 0.40."
    )
    assert "sentiment_decline" not in codes(
        decide_insights(history, now=NOW, rules=InsightRules(decline_drop=0.5))
    )


def test_real_texts_turning_sour(history: History) -> None:
    history.add(50, HAPPY)
    history.add(40, "The new dashboards are great, thanks for the quick setup!")
    history.add(30, "Reports are slow this week.")
    history.add(20, STILL_UNHAPPY)
    history.add(10, "This is the third time the export failed. Very disappointed.")
    drafts = by_code(history.decide())
    assert drafts["sentiment_trend"].facts["direction"] == "declining"
    assert drafts["sentiment_decline"].kind is InsightKind.RISK


# --- opportunities ------------------------------------------------------------------------------


def test_opportunities_fire_on_the_customers_words(history: History) -> None:
    seats = history.add(9, EXPANSION)
    plan = history.add(6, UPSELL)
    reference = history.add(3, REFERRAL)
    drafts = by_code(history.decide())
    assert codes(list(drafts.values()), InsightKind.OPPORTUNITY) == [
        "expansion",
        "upsell",
        "referral",
    ]
    assert history.quotes(drafts["expansion"]) == [(seats, "add 25 more seats")]
    assert history.quotes(drafts["upsell"]) == [(plan, "interested in the Enterprise plan")]
    assert history.quotes(drafts["referral"]) == [(reference, "be a reference")]
    assert drafts["expansion"].confidence == 0.6
    assert drafts["expansion"].title == "Expansion opportunity"


def test_opportunities_stay_quiet_on_declines_and_our_offers(history: History) -> None:
    history.add(9, "Thanks for the offer of more seats, but not right now.")
    history.add(8, "We will not add seats this year.")
    history.add(7, "We'd rather not do a case study.")
    history.add(6, "We are not interested in the enterprise plan.")
    history.add(5, "Would you like to add more seats for the new team?", OUT)
    assert codes(history.decide(), InsightKind.OPPORTUNITY) == []


def test_an_opportunity_inside_a_complaint_counts_half(history: History) -> None:
    history.add(
        3,
        "The export is still failing and we want to add 10 more seats only once it works. "
        "This is frustrating.",
    )
    assert by_code(history.decide())["expansion"].confidence == pytest.approx(0.3)


# --- next best actions --------------------------------------------------------------------------


def test_next_best_actions_follow_the_rule_table_and_stop_at_three(history: History) -> None:
    history.add(60, EXPANSION)
    history.add(45, "SFDC called us about a lower price.")
    history.add(35, CHURN)
    history.add(25, LEGAL)
    drafts = history.decide()
    actions = [d for d in drafts if d.kind is InsightKind.NEXT_BEST_ACTION]
    assert [a.code for a in actions] == [
        "nba_escalate_legal",
        "nba_retention_call",
        "nba_reply_escalation",
    ]
    assert [a.facts["rank"] for a in actions] == [1, 2, 3]
    risks = by_code(drafts)
    for action in actions:
        trigger = risks[str(action.facts["trigger"])]
        assert (action.evidence, action.confidence) == (trigger.evidence, trigger.confidence)
    everything = [
        d.code for d in history.decide(max_actions=20) if d.kind is InsightKind.NEXT_BEST_ACTION
    ]
    assert everything == [
        "nba_escalate_legal",
        "nba_retention_call",
        "nba_reply_escalation",
        "nba_competitive_comparison",
        "nba_address_decline",
        "nba_check_in",
        "nba_propose_expansion",
    ]
    # Insights come in a fixed order: risks, opportunities, the trend, then actions.
    kinds = [d.kind for d in drafts]
    assert kinds == sorted(kinds, key=list(InsightKind).index)


def test_an_opportunity_alone_gets_its_action(history: History) -> None:
    history.add(2, EXPANSION)
    (action,) = [d for d in history.decide() if d.kind is InsightKind.NEXT_BEST_ACTION]
    assert action.code == "nba_propose_expansion"
    assert action.title == "Propose a seat expansion"
    assert action.description.startswith("Send a proposal for the additional seats or teams. ")


# --- selection, determinism, configuration --------------------------------------------------------


def test_select_by_kind_and_since(history: History) -> None:
    history.add(40, CHURN)
    history.add(10, EXPANSION)
    everything = history.decide()
    risks = select_insights(history.items, now=NOW, kinds=[InsightKind.RISK])
    assert risks == [d for d in everything if d.kind is InsightKind.RISK] != []
    actions = select_insights(history.items, now=NOW, kinds={InsightKind.NEXT_BEST_ACTION})
    assert actions == [d for d in everything if d.kind is InsightKind.NEXT_BEST_ACTION]
    assert select_insights(history.items, now=NOW) == everything
    recent = select_insights(history.items, now=NOW, since=NOW - timedelta(days=20))
    assert "churn_intent" not in codes(recent)
    assert "expansion" in codes(recent)
    with pytest.raises(ValueError, match="since"):
        select_insights(history.items, now=NOW, since=datetime(2025, 1, 1))


def test_decisions_are_deterministic_and_ignore_input_order(history: History) -> None:
    for days, body in [(80, HAPPY), (60, EXPANSION), (45, ESCALATION), (30, CHURN), (25, REPLY)]:
        history.add(days, body, OUT if body == REPLY else IN)
    history.add(22, LEGAL)
    first = history.decide()
    shuffled = list(history.items)
    random.Random(7).shuffle(shuffled)
    assert decide_insights(shuffled, now=NOW) == first
    assert decide_insights(tuple(history.items), now=NOW) == first


def test_the_future_is_ignored(history: History) -> None:
    history.add(-5, CHURN)
    assert history.decide() == []


def test_rules_defaults_and_validation() -> None:
    rules = InsightRules()
    assert (rules.silence_days, rules.unanswered_outbound, rules.max_actions) == (21, 3, 3)
    assert (rules.trend_days, rules.trend_messages, rules.min_trend_points) == ((30, 90), 6, 3)
    for bad in (
        {"silence_days": 0},
        {"trend_days": ()},
        {"min_trend_points": 1},
        {"decline_drop": 0.0},
    ):
        with pytest.raises(ValueError):
            InsightRules(**bad)
    with pytest.raises(ValueError, match="now"):
        decide_insights([], now=datetime(2025, 1, 1))
