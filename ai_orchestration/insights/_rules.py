"""What GenerateInsights says about a customer: risks, opportunities, the sentiment trend and the
next best actions, each decided by an explicit rule over the signals stored at ingest.

Every insight carries a confidence from a stated formula, evidence spans a reader can check, and
the figures it rests on (``facts``). A language model may only reword the title and description
from those facts; the deterministic wording of :mod:`._wording` is what the customer sees when
it is down. Pure functions of (history, now, rules): no clock, no randomness, and the order of
the history does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from ai_orchestration.insights._actions import next_best_actions
from ai_orchestration.insights._drafts import (
    InsightDraft,
    InsightKind,
    InsightRules,
    make_draft,
    spans_of,
    whole_of,
)
from ai_orchestration.insights._trend import (
    ScoredInteraction,
    Trend,
    TrendDirection,
    baseline_shift,
    chronological,
    is_customer_voice,
    trend_over_days,
    trend_over_messages,
)
from ai_orchestration.insights._types import Direction, MentionKind
from ai_orchestration.insights._wording import FactValue

_DAY: Final = timedelta(days=1)
_DEFAULTS: Final = InsightRules()


@dataclass(frozen=True, slots=True)
class _History:
    now: datetime
    rules: InsightRules
    lookback_start: datetime
    items: tuple[ScoredInteraction, ...]
    """Everything up to ``now``, oldest first."""
    voice: tuple[ScoredInteraction, ...]
    """The customer's messages within the lookback window, oldest first."""
    contacts: tuple[ScoredInteraction, ...]
    """Everything but internal notes, oldest first."""

    def days_since(self, item: ScoredInteraction) -> float:
        return (self.now - item.occur_time) / _DAY

    def message_trend(self) -> Trend | None:
        r = self.rules
        return trend_over_messages(
            self.items,
            count=r.trend_messages,
            min_points=r.min_trend_points,
            min_change=r.trend_min_change,
        )

    def day_trend(self, days: int) -> Trend | None:
        r = self.rules
        return trend_over_days(
            self.items,
            now=self.now,
            days=days,
            min_points=r.min_trend_points,
            min_change=r.trend_min_change,
        )


def decide_insights(
    history: Iterable[ScoredInteraction], *, now: datetime, rules: InsightRules = _DEFAULTS
) -> list[InsightDraft]:
    """Every insight the rules find in ``history`` at ``now``.

    Risks first, then opportunities, the sentiment trend, and at most ``rules.max_actions``
    next best actions in rank order. Interactions after ``now`` are ignored.
    """
    _aware(now, "now")
    items = tuple(item for item in chronological(history) if item.occur_time <= now)
    start = now - timedelta(days=rules.lookback_days)
    h = _History(
        now=now,
        rules=rules,
        lookback_start=start,
        items=items,
        voice=tuple(i for i in items if i.occur_time >= start and is_customer_voice(i)),
        contacts=tuple(i for i in items if i.direction is not Direction.INTERNAL),
    )
    found = [draft for rule in _RULES if (draft := rule(h)) is not None]
    return [*found, *next_best_actions(found, rules.max_actions)]


def select_insights(
    history: Iterable[ScoredInteraction],
    *,
    now: datetime,
    kinds: Collection[InsightKind] = (),
    since: datetime | None = None,
    rules: InsightRules = _DEFAULTS,
) -> list[InsightDraft]:
    """What a GenerateInsights request asks for: only interactions at or after ``since`` are
    considered, and only insights of ``kinds`` (all when empty) are returned.

    Next best actions are still derived from every risk and opportunity, so asking for actions
    alone gives the same actions as asking for everything.
    """
    if since is not None:
        _aware(since, "since")
        history = [item for item in history if item.occur_time >= since]
    drafts = decide_insights(history, now=now, rules=rules)
    return [draft for draft in drafts if not kinds or draft.kind in kinds]


# --- risks and opportunities -------------------------------------------------------------


def _churn_intent(h: _History) -> InsightDraft | None:
    """Confidence ``1 - 0.4^k`` for k customer messages speaking of leaving."""
    return _mentioned(h, MentionKind.CHURN, InsightKind.RISK, "churn_intent", first=0.6)


def _competitor_mentioned(h: _History) -> InsightDraft | None:
    """Confidence ``1 - 0.5^k`` for k customer messages naming a competitor."""
    return _mentioned(
        h, MentionKind.COMPETITOR, InsightKind.RISK, "competitor_mentioned", first=0.5
    )


def _expansion(h: _History) -> InsightDraft | None:
    """Confidence ``1 - prod(1 - 0.6 w)`` over the customer's messages with the mention, w = 1,
    or 0.5 for a message of negative tone (an aside in a complaint is a weaker signal)."""
    return _opportunity(h, MentionKind.EXPANSION, "expansion")


def _upsell(h: _History) -> InsightDraft | None:
    """As :func:`_expansion`."""
    return _opportunity(h, MentionKind.UPSELL, "upsell")


def _referral(h: _History) -> InsightDraft | None:
    """As :func:`_expansion`."""
    return _opportunity(h, MentionKind.REFERRAL, "referral")


def _opportunity(h: _History, mention: MentionKind, code: str) -> InsightDraft | None:
    return _mentioned(h, mention, InsightKind.OPPORTUNITY, code, first=0.6, tone_weighted=True)


def _mentioned(
    h: _History,
    mention: MentionKind,
    kind: InsightKind,
    code: str,
    *,
    first: float,
    tone_weighted: bool = False,
) -> InsightDraft | None:
    hits = [item for item in h.voice if item.signals.has(mention)]
    if not hits:
        return None
    missed = 1.0
    for item in hits:
        negative = item.signals.sentiment.score <= h.rules.negative_score
        missed *= 1.0 - first * (0.5 if tone_weighted and negative else 1.0)
    mentions = [m for item in hits for m in item.signals.mentions_of(mention)]
    facts: dict[str, FactValue] = {
        "interactions": len(hits),
        "mentions": len(mentions),
        "terms": ", ".join(dict.fromkeys(m.term for m in mentions)),
        "days_since_latest": int(h.days_since(hits[-1])),
        "lookback_days": h.rules.lookback_days,
    }
    evidence = spans_of(hits, {mention}, h.rules.max_evidence)
    return make_draft(kind, code, 1.0 - missed, evidence, facts)


def _unresolved_escalation(h: _History) -> InsightDraft | None:
    """An escalation or legal threat is unresolved while no outbound interaction followed it, or
    while the customer had the last word after our reply and it was negative. Confidence
    ``1 - (1 - c)^k`` for k unresolved messages, c = 0.7 with a legal threat among them, else
    0.5."""
    opened: list[ScoredInteraction] = []
    unanswered = 0
    for index, item in enumerate(h.items):
        flagged = item.signals.escalation or item.signals.legal_threat
        if not flagged or item.occur_time < h.lookback_start or not is_customer_voice(item):
            continue
        later = h.items[index + 1 :]
        last_reply = _last_index(later, lambda i: i.direction is Direction.OUTBOUND)
        if last_reply is None:
            opened.append(item)
            unanswered += 1
            continue
        # A call we placed is both our reply and the customer's word: its tone counts.
        last_word = _last_index(later, is_customer_voice)
        if (
            last_word is not None
            and last_word >= last_reply
            and later[last_word].signals.sentiment.score <= h.rules.negative_score
        ):
            opened.append(item)
    if not opened:
        return None
    legal = sum(1 for item in opened if item.signals.legal_threat)
    kinds = {MentionKind.ESCALATION, MentionKind.LEGAL}
    facts: dict[str, FactValue] = {
        "escalations": len(opened),
        "legal_threats": legal,
        "unanswered": unanswered,
        "days_since_oldest": int(h.days_since(opened[0])),
        "terms": ", ".join(
            dict.fromkeys(m.term for i in opened for m in i.signals.mentions if m.kind in kinds)
        ),
    }
    first = 0.7 if legal else 0.5
    confidence = 1.0 - (1.0 - first) ** len(opened)
    evidence = spans_of(opened, kinds, h.rules.max_evidence)
    return make_draft(InsightKind.RISK, "unresolved_escalation", confidence, evidence, facts)


def _sentiment_decline(h: _History) -> InsightDraft | None:
    """A declining trend over the last messages or the shortest time window, or a recent mean
    ``decline_drop`` below the customer's baseline. The strongest of these is reported: a
    trend's own confidence, or ``n / (n + 3) * min(1, drop / (2 * decline_drop))`` for the
    baseline with n recent messages."""
    r = h.rules
    candidates: list[tuple[float, Sequence[ScoredInteraction], dict[str, FactValue]]] = []
    for trend in (h.message_trend(), h.day_trend(min(r.trend_days))):
        if trend is not None and trend.direction is TrendDirection.DECLINING:
            facts: dict[str, FactValue] = {
                "window": trend.window,
                "unit": trend.unit,
                "slope": round(trend.slope, 4),
                "change": round(trend.change, 4),
                "points": trend.points,
            }
            candidates.append((trend.confidence, trend.interactions, facts))
    shift = baseline_shift(
        h.items,
        recent=r.trend_messages,
        baseline=r.baseline_messages,
        min_points=r.min_trend_points,
    )
    if shift is not None and round(shift.drop, 9) >= r.decline_drop:
        n = len(shift.recent)
        confidence = n / (n + 3) * min(1.0, shift.drop / (2 * r.decline_drop))
        facts = {
            "window": "baseline",
            "baseline_mean": round(shift.baseline_mean, 4),
            "recent_mean": round(shift.recent_mean, 4),
            "drop": round(shift.drop, 4),
            "points": n,
            "baseline_points": len(shift.baseline),
        }
        candidates.append((confidence, shift.recent, facts))
    if not candidates:
        return None
    confidence, points, facts = max(candidates, key=lambda c: c[0])  # ties: the first listed
    evidence = whole_of(points, r.max_evidence)
    return make_draft(InsightKind.RISK, "sentiment_decline", confidence, evidence, facts)


def _no_recent_activity(h: _History) -> InsightDraft | None:
    """Confidence ``min(0.95, 0.5 + 0.45 * (days - silence_days) / silence_days)``: 0.5 on the
    day the silence becomes a risk, 0.95 at twice as long."""
    if not h.contacts:
        return None
    last = h.contacts[-1]
    days = h.days_since(last)
    silence = h.rules.silence_days
    if days < silence:
        return None
    facts: dict[str, FactValue] = {
        "days_silent": int(days),
        "silence_days": silence,
        "last_kind": last.kind.value,
        "last_direction": last.direction.value,
    }
    confidence = min(0.95, 0.5 + 0.45 * (days - silence) / silence)
    evidence = whole_of([last], 1)
    return make_draft(InsightKind.RISK, "no_recent_activity", confidence, evidence, facts)


def _unanswered_outbound(h: _History) -> InsightDraft | None:
    """Outbound messages since the customer last spoke. Confidence
    ``min(0.95, 1 - 0.5^(n - threshold + 1))``: 0.5 at the threshold, 0.75 one more."""
    spoke = [index for index, item in enumerate(h.items) if is_customer_voice(item)]
    since = h.items[spoke[-1] + 1 :] if spoke else h.items
    waiting = [item for item in since if item.direction is Direction.OUTBOUND]
    threshold = h.rules.unanswered_outbound
    if len(waiting) < threshold:
        return None
    facts: dict[str, FactValue] = {"outbound": len(waiting), "threshold": threshold}
    if spoke:
        facts["days_since_reply"] = int(h.days_since(h.items[spoke[-1]]))
    confidence = min(0.95, 1.0 - 0.5 ** (len(waiting) - threshold + 1))
    evidence = whole_of(waiting, h.rules.max_evidence)
    return make_draft(InsightKind.RISK, "unanswered_outbound", confidence, evidence, facts)


def _pricing_not_discussed(h: _History) -> InsightDraft | None:
    """Late in the cycle (first interaction ``pricing_after_days`` ago, at least
    ``pricing_min_interactions`` interactions) and no price, quote or amount ever came up.
    Confidence ``min(0.9, 0.5 + 0.05 * (n - pricing_min_interactions))``. Cites the latest
    interactions, the ones in which pricing should have come up."""
    r = h.rules
    contacts = h.contacts
    if len(contacts) < r.pricing_min_interactions:
        return None
    age = h.days_since(contacts[0])
    if age < r.pricing_after_days or any(item.signals.pricing for item in contacts):
        return None
    facts: dict[str, FactValue] = {
        "interactions": len(contacts),
        "days_since_first": int(age),
        "pricing_after_days": r.pricing_after_days,
    }
    confidence = min(0.9, 0.5 + 0.05 * (len(contacts) - r.pricing_min_interactions))
    evidence = whole_of(contacts, r.max_evidence)
    return make_draft(InsightKind.RISK, "pricing_not_discussed", confidence, evidence, facts)


def _sentiment_trend(h: _History) -> InsightDraft | None:
    """The last messages, then each time window from the shortest; the first with a direction
    other than stable is the headline (else the first with a trend). Its confidence and points
    are the insight's."""
    r = h.rules
    windows = [h.message_trend(), *(h.day_trend(days) for days in sorted(set(r.trend_days)))]
    found = [trend for trend in windows if trend is not None]
    if not found:
        return None
    headline = next((t for t in found if t.direction is not TrendDirection.STABLE), found[0])
    facts: dict[str, FactValue] = {
        "window": headline.window,
        "direction": headline.direction.value,
        "unit": headline.unit,
        "slope": round(headline.slope, 4),
        "change": round(headline.change, 4),
        "points": headline.points,
        "windows": ",".join(t.window for t in found),
    }
    for trend in found:
        facts[f"{trend.window}_direction"] = trend.direction.value
        facts[f"{trend.window}_slope"] = round(trend.slope, 4)
        facts[f"{trend.window}_points"] = trend.points
    evidence = whole_of(headline.interactions, r.max_evidence)
    return make_draft(
        InsightKind.SENTIMENT_TREND, "sentiment_trend", headline.confidence, evidence, facts
    )


_RULES: Final[tuple[Callable[[_History], InsightDraft | None], ...]] = (
    _churn_intent,
    _sentiment_decline,
    _unresolved_escalation,
    _competitor_mentioned,
    _no_recent_activity,
    _unanswered_outbound,
    _pricing_not_discussed,
    _expansion,
    _upsell,
    _referral,
    _sentiment_trend,
)


# --- helpers -----------------------------------------------------------------------------


def _last_index(
    items: Sequence[ScoredInteraction], test: Callable[[ScoredInteraction], bool]
) -> int | None:
    return next((i for i in range(len(items) - 1, -1, -1) if test(items[i])), None)


def _aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
