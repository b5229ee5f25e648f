"""Alert rules on commit: each fires on the e-mails it should, with its severity and evidence,
and stays quiet on polite business mail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ai_orchestration.insights import (
    AlertDraft,
    AlertKind,
    AlertRules,
    CompetitorList,
    Direction,
    Evidence,
    Interaction,
    InteractionKind,
    ScoredInteraction,
    Sentiment,
    SentimentScorer,
    Severity,
    SignalExtractor,
    Signals,
    evaluate_alerts,
    label_of,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
COMPETITORS = CompetitorList.from_mapping({"Salesforce": ("SFDC", "Sales Cloud")})
IN, OUT, NOTE = Direction.INBOUND, Direction.OUTBOUND, Direction.INTERNAL
CUSTOMER = "acct-7"
RULE_KINDS = [k for k in AlertKind if k is not AlertKind.BUDGET_THRESHOLD]

# VADER's lexicon reads "PO" as slang (-2.6); CRM_LEXICON reads it as a purchase order.
ISSUE_THE_PO = pytest.param(
    "Hi Anna,\n\nPlease issue the PO for the renewal by Friday so our finance team can process "
    "it.\n\nThanks,\nEva",
    id="issue-the-po",
)
POLITE = [
    "No problem at all, we can move Thursday's call to 3pm.",
    "The missing export field is not a blocker for us; we can wait for the next release.",
    "We will not cancel our subscription. The team is happy with the product, we only wanted "
    "to check the renewal terms.",
    "Please send the updated quote for 40 seats when you have a moment.",
    "Thanks for the quick fix, the calendar sync works again.",
    "I need to cancel our call on Tuesday, could we do Wednesday instead?",
    "Our lawyers are reviewing the MSA and will send their comments next week.",
    "We compared you with Zoho last year and chose you; happy to keep going.",
    "Could you explain the difference between the Pro and Enterprise plans? Our CFO approved "
    "the budget.",
    "Great workshop yesterday, everyone found it useful. Looking forward to the next one!",
    "Sorry for the late reply, I was out of office. The invoice is approved and payment goes "
    "out on Monday.",
]
ANGRY = (
    "The export failed again this morning and my team lost a full day of work. "
    "I am really disappointed."
)
CHURN = "Thanks for the call. Unfortunately we are not renewing in June, the budget was cut."
SWITCHING = "We have decided to switch to Sales Cloud when the contract ends."
COMPETITOR = "Our CFO asked how your forecasting compares with SFDC."
LEGAL = "If the data is not restored by Friday, our lawyers will contact you."
MANAGER = "I would like to speak to your manager about ticket 5521."
COMPLAINT = "The report page is slow again, can someone check it?"


@pytest.fixture(scope="module")
def extractor() -> SignalExtractor:
    return SignalExtractor(scorer=SentimentScorer())


class History:
    """A customer's interactions built from real texts with the real extractor; keeps the texts
    to check that evidence spans quote the right words."""

    def __init__(self, extractor: SignalExtractor) -> None:
        self._extractor = extractor
        self.items: list[ScoredInteraction] = []
        self.texts: dict[str, str] = {}

    def scored(
        self,
        days_ago: float,
        body: str,
        direction: Direction = IN,
        kind: InteractionKind = InteractionKind.EMAIL,
    ) -> ScoredInteraction:
        """A new interaction, not yet in the history."""
        interaction = Interaction(
            interaction_id=f"i{len(self.texts)}",
            customer_id=CUSTOMER,
            kind=kind,
            direction=direction,
            occur_time=NOW - timedelta(days=days_ago),
            subject="",
            body=body,
        )
        self.texts[interaction.interaction_id] = interaction.text
        return ScoredInteraction.of(interaction, self._extractor.extract(interaction, COMPETITORS))

    def add(self, days_ago: float, body: str, direction: Direction = IN) -> str:
        item = self.scored(days_ago, body, direction)
        self.items.append(item)
        return item.interaction_id

    def evaluate(self, new: ScoredInteraction, rules: AlertRules | None = None) -> list[AlertDraft]:
        drafts = evaluate_alerts(new, CUSTOMER, self.items, rules=rules or AlertRules())
        assert len({d.kind for d in drafts}) == len(drafts)  # one per kind
        assert [d.kind for d in drafts] == [k for k in AlertKind if k in {d.kind for d in drafts}]
        for draft in drafts:
            assert draft.customer_id == CUSTOMER
            assert draft.message.endswith(".") and draft.message.count(". ") == 0
            for evidence in draft.evidence:
                assert (
                    0 <= evidence.start < evidence.end <= len(self.texts[evidence.interaction_id])
                )
        return drafts

    def quotes(self, draft: AlertDraft) -> list[str]:
        return [self.texts[e.interaction_id][e.start : e.end] for e in draft.evidence]


@pytest.fixture
def history(extractor: SignalExtractor) -> History:
    return History(extractor)


def by_kind(drafts: Sequence[AlertDraft]) -> dict[AlertKind, AlertDraft]:
    return {d.kind: d for d in drafts}


def point(interaction_id: str, days_ago: float, score: float) -> ScoredInteraction:
    signals = Signals(
        sentiment=Sentiment(score, label_of(score), 0.9),
        competitors=(),
        pricing=False,
        churn_intent=False,
        escalation=False,
        legal_threat=False,
        mentions=(),
    )
    occur = NOW - timedelta(days=days_ago)
    return ScoredInteraction(interaction_id, occur, InteractionKind.EMAIL, IN, signals, 80)


# --- quiet on polite mail --------------------------------------------------------------------


@pytest.mark.parametrize("body", [ISSUE_THE_PO, *POLITE])
def test_a_polite_email_raises_nothing(history: History, body: str) -> None:
    assert history.evaluate(history.scored(0, body)) == []


def test_a_history_of_polite_mail_raises_nothing(history: History) -> None:
    for days_ago, body in enumerate(reversed(POLITE * 3)):
        new = history.scored(days_ago / 2, body)
        assert history.evaluate(new) == [], body
        history.items.append(new)


def test_our_own_words_and_internal_notes_raise_nothing(history: History) -> None:
    for direction, kind in [(OUT, InteractionKind.EMAIL), (NOTE, InteractionKind.NOTE)]:
        for body in (ANGRY, CHURN, COMPETITOR, LEGAL):
            assert history.evaluate(history.scored(0, body, direction, kind)) == []


def test_a_call_we_placed_is_the_customers_voice(history: History) -> None:
    new = history.scored(0, LEGAL, OUT, InteractionKind.CALL)
    escalation = by_kind(history.evaluate(new))[AlertKind.ESCALATION]
    assert escalation.message == ("The customer threatened legal action in a call (lawyer).")


# --- negative sentiment ----------------------------------------------------------------------


def test_negative_sentiment_cites_the_whole_message(history: History) -> None:
    new = history.scored(0, ANGRY)
    alert = by_kind(history.evaluate(new))[AlertKind.NEGATIVE_SENTIMENT]
    score = new.signals.sentiment.score
    assert score <= -0.75
    assert alert.severity is Severity.HIGH
    assert alert.evidence == (Evidence(new.interaction_id, 0, len(ANGRY)),)
    assert dict(alert.facts) == {
        "interaction_kind": "email",
        "reason": "negative_sentiment",
        "score": score,
        "threshold": -0.5,
    }
    assert alert.message == (
        f"The customer's tone in an inbound email scored {score:+.2f}, at or below the alert "
        "threshold of -0.50."
    )
    assert "disappointed" not in alert.message


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (-0.49, None),
        (-0.5, Severity.LOW),
        (-0.59, Severity.LOW),
        (-0.6, Severity.MEDIUM),
        (-0.74, Severity.MEDIUM),
        (-0.75, Severity.HIGH),
        (-1.0, Severity.HIGH),
    ],
)
def test_negative_sentiment_severity_follows_the_score(
    score: float, severity: Severity | None
) -> None:
    drafts = by_kind(evaluate_alerts(point("n", 0, score), CUSTOMER, [], rules=AlertRules()))
    alert = drafts.get(AlertKind.NEGATIVE_SENTIMENT)
    assert (alert and alert.severity) == severity


def test_the_negative_threshold_is_the_tenants() -> None:
    new = point("n", 0, -0.4)
    assert evaluate_alerts(new, CUSTOMER, [], rules=AlertRules()) == []
    strict = AlertRules(negative_threshold=-0.3)
    [alert] = evaluate_alerts(new, CUSTOMER, [], rules=strict)
    assert (alert.kind, alert.severity, alert.facts["threshold"]) == (
        AlertKind.NEGATIVE_SENTIMENT,
        Severity.LOW,
        -0.3,
    )


# --- churn risk ------------------------------------------------------------------------------


def test_churn_intent_is_high_and_cites_the_words(history: History) -> None:
    new = history.scored(0, CHURN)
    alert = by_kind(history.evaluate(new))[AlertKind.CHURN_RISK]
    assert alert.severity is Severity.HIGH
    assert history.quotes(alert) == ["not renewing"]
    assert alert.facts["reason"] == "churn_intent"
    assert alert.message == ("The customer spoke of leaving in an inbound email (not renewing).")


def test_a_drop_below_the_customers_baseline_is_a_churn_risk() -> None:
    history = [point(f"b{i}", 60 - i, 0.6) for i in range(10)]
    history += [point(f"r{i}", 10 - i, 0.1) for i in range(5)]
    new = point("new", 1, 0.0)
    [alert] = evaluate_alerts(new, CUSTOMER, history, rules=AlertRules())
    assert (alert.kind, alert.severity) == (AlertKind.CHURN_RISK, Severity.MEDIUM)
    recent = [f"r{i}" for i in range(5)] + ["new"]
    assert [e.interaction_id for e in alert.evidence] == recent
    assert all((e.start, e.end) == (0, 80) for e in alert.evidence)
    assert dict(alert.facts) == {
        "interaction_kind": "email",
        "reason": "sentiment_drop",
        "recent_mean": pytest.approx(0.5 / 6, abs=1e-4),
        "baseline_mean": 0.6,
        "drop": pytest.approx(0.6 - 0.5 / 6, abs=1e-4),
        "threshold": 0.35,
        "points": 6,
        "baseline_points": 10,
    }
    assert alert.message == (
        "The customer's last 6 messages average +0.08 against +0.60 over the 10 before them, "
        "a drop of 0.52."
    )


def test_the_baseline_drop_needs_the_threshold_history_and_a_message_below_it() -> None:
    rules = AlertRules()
    baseline = [point(f"b{i}", 60 - i, 0.5) for i in range(10)]
    # A drop of exactly the threshold counts.
    exact = [*baseline, *(point(f"r{i}", 10 - i, 0.15) for i in range(5))]
    assert evaluate_alerts(point("new", 1, 0.15), CUSTOMER, exact, rules=rules)
    # Just short of it does not.
    short = [*baseline, *(point(f"r{i}", 10 - i, 0.16) for i in range(5))]
    assert evaluate_alerts(point("new", 1, 0.16), CUSTOMER, short, rules=rules) == []
    # Two earlier messages are no baseline.
    assert evaluate_alerts(point("new", 1, 0.0), CUSTOMER, exact[8:], rules=rules) == []
    # A message at or above the baseline raises nothing, whatever came before it.
    assert evaluate_alerts(point("new", 1, 0.5), CUSTOMER, exact, rules=rules) == []


# --- competitor mention ----------------------------------------------------------------------


def test_a_competitor_mention_names_the_configured_name_only(history: History) -> None:
    new = history.scored(0, COMPETITOR)
    [alert] = history.evaluate(new)
    assert (alert.kind, alert.severity) == (AlertKind.COMPETITOR_MENTION, Severity.LOW)
    assert history.quotes(alert) == ["SFDC"]
    assert alert.message == "The customer mentioned Salesforce in an inbound email."
    assert "SFDC" not in alert.message and "forecasting" not in alert.message
    assert alert.facts["competitors"] == "Salesforce"


def test_switching_to_a_competitor_is_churn_and_a_medium_competitor_alert(
    history: History,
) -> None:
    new = history.scored(0, SWITCHING)
    drafts = by_kind(history.evaluate(new))
    assert drafts[AlertKind.COMPETITOR_MENTION].severity is Severity.MEDIUM
    assert history.quotes(drafts[AlertKind.COMPETITOR_MENTION]) == ["Sales Cloud"]
    assert drafts[AlertKind.CHURN_RISK].severity is Severity.HIGH
    assert history.quotes(drafts[AlertKind.CHURN_RISK]) == ["switch to Sales Cloud"]


def test_an_unlisted_competitor_raises_nothing(history: History) -> None:
    assert history.evaluate(history.scored(0, "How do you compare with Zoho on reporting?")) == []


# --- escalation ------------------------------------------------------------------------------


def test_a_legal_threat_is_a_high_escalation(history: History) -> None:
    new = history.scored(0, LEGAL)
    alert = by_kind(history.evaluate(new))[AlertKind.ESCALATION]
    assert alert.severity is Severity.HIGH
    assert history.quotes(alert) == ["our lawyers will contact"]
    assert dict(alert.facts) == {
        "interaction_kind": "email",
        "reason": "legal_threat",
        "terms": "lawyer",
    }


def test_escalation_language_is_a_medium_escalation(history: History) -> None:
    new = history.scored(0, MANAGER)
    [alert] = history.evaluate(new)
    assert (alert.kind, alert.severity) == (AlertKind.ESCALATION, Severity.MEDIUM)
    assert history.quotes(alert) == ["speak to your manager"]
    assert alert.message == ("The customer used escalation language in an inbound email (manager).")


def test_repeated_complaints_are_an_escalation_citing_each(history: History) -> None:
    first = history.add(12, COMPLAINT)
    history.add(11, "Sorry about that, our engineers are looking into it.", OUT)
    history.add(8, POLITE[5])
    second = history.add(5, "The calendar sync is broken again, can you check?")
    new = history.scored(0, "The dashboard is slow again today.")
    assert new.signals.sentiment.score > -0.5  # below the single-message threshold
    [alert] = history.evaluate(new)
    assert (alert.kind, alert.severity) == (AlertKind.ESCALATION, Severity.MEDIUM)
    assert [e.interaction_id for e in alert.evidence] == [first, second, new.interaction_id]
    assert history.quotes(alert)[0] == COMPLAINT  # whole messages
    assert dict(alert.facts) == {
        "interaction_kind": "email",
        "reason": "repeated_complaints",
        "complaints": 3,
        "complaint_days": 14,
        "threshold": 3,
    }
    assert alert.message == "The customer sent 3 negative messages in the last 14 days."


def test_repeated_complaints_count_only_the_window_and_need_a_complaint_now(
    history: History,
) -> None:
    history.add(20, COMPLAINT)  # outside the 14 days
    history.add(5, COMPLAINT)
    assert history.evaluate(history.scored(0, COMPLAINT)) == []
    history.add(3, COMPLAINT)
    assert history.evaluate(history.scored(0, POLITE[5])) == []  # the new one is not a complaint
    assert history.evaluate(history.scored(0, COMPLAINT))
    assert history.evaluate(history.scored(0, COMPLAINT), AlertRules(repeated_complaints=4)) == []
    assert history.evaluate(history.scored(0, COMPLAINT), AlertRules(complaint_days=4)) == []


def test_legal_outranks_language_and_complaints(history: History) -> None:
    history.add(3, COMPLAINT)
    history.add(2, COMPLAINT)
    new = history.scored(0, f"{MANAGER} {LEGAL}")
    alert = by_kind(history.evaluate(new))[AlertKind.ESCALATION]
    assert (alert.severity, alert.facts["reason"]) == (Severity.HIGH, "legal_threat")


# --- history handling ------------------------------------------------------------------------


def test_later_interactions_that_arrived_first_are_ignored(history: History) -> None:
    history.add(-2, COMPLAINT)  # happened after the new one
    history.add(-1, COMPLAINT)
    assert history.evaluate(history.scored(0, COMPLAINT)) == []
    history.add(1, COMPLAINT)
    history.add(2, COMPLAINT)
    assert history.evaluate(history.scored(0, COMPLAINT))


def test_the_new_interaction_in_its_own_history_counts_once(history: History) -> None:
    history.add(2, COMPLAINT)
    new = history.scored(0, COMPLAINT)
    history.items.append(new)
    assert history.evaluate(new) == []


def test_disabled_rules_raise_nothing(history: History) -> None:
    new = history.scored(0, f"{ANGRY} {CHURN} {COMPETITOR} {LEGAL}")
    assert [d.kind for d in history.evaluate(new)] == RULE_KINDS
    assert history.evaluate(new, AlertRules(enabled=frozenset())) == []
    for kind in RULE_KINDS:
        rules = AlertRules(enabled=frozenset(RULE_KINDS) - {kind})
        assert [d.kind for d in history.evaluate(new, rules)] == [
            k for k in RULE_KINDS if k != kind
        ]
