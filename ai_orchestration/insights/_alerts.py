"""Alert rules evaluated when an interaction is committed (issue #18): over the new
interaction's signals and the customer's history before it.

Each rule reads only what ingest stored (:class:`Signals`), so alerts need no LLM, no text and
no clock: :func:`evaluate_alerts` is a pure function of its arguments. Only the customer's own
voice raises alerts (:func:`is_customer_voice`): our replies quote the customer's words back
and apologise by policy. Negated phrases ("we will not cancel") were dropped by the detectors
at ingest, so the rules take every mention at its word. The cooldown that keeps one alert per
customer and kind is the storage's, through :func:`cooling_down`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from ai_orchestration.insights._alert_settings import AlertKind, AlertRules, Severity
from ai_orchestration.insights._drafts import Evidence
from ai_orchestration.insights._trend import (
    ScoredInteraction,
    baseline_shift,
    chronological,
    is_customer_voice,
)
from ai_orchestration.insights._types import Direction, InteractionKind, MentionKind, SentimentLabel
from ai_orchestration.insights._wording import FactValue

# Severity bands of a negative message (documented with AlertRules.negative_threshold): HIGH
# at or below -0.75, MEDIUM at or below -0.6 (the very negative band's edge), else LOW.
_SEVERE_SCORE: Final[float] = -0.75
_MEDIUM_SCORE: Final[float] = -0.6
# The baseline comparison of AlertRules.churn_drop: the last 6 customer messages against the
# 20 before them, at least 3 in each group.
_RECENT_MESSAGES: Final[int] = 6
_BASELINE_MESSAGES: Final[int] = 20
_MIN_POINTS: Final[int] = 3
# Complaints cited by one repeated-complaints alert, the latest kept: a customer who writes
# fifty angry tickets in a week needs one alert, not fifty spans.
_MAX_EVIDENCE: Final[int] = 20
_NEGATIVE_LABELS: Final = frozenset({SentimentLabel.NEGATIVE, SentimentLabel.VERY_NEGATIVE})
_CONVERSATIONS: Final = frozenset({InteractionKind.CALL, InteractionKind.MEETING})


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """An alert as a rule raised it, before the cooldown and storage give it an id."""

    kind: AlertKind
    """What it is about."""
    severity: Severity
    """How urgent, by the rule documented with :class:`AlertRules`."""
    customer_id: str
    """The CRM customer it concerns."""
    message: str
    """One plain sentence built from :attr:`facts` alone; the only customer words it holds are
    a competitor's configured name."""
    evidence: tuple[Evidence, ...]
    """The spans that raised it, oldest first: mention spans, or whole interactions
    (``0..text_chars``) where the tone of the whole message is the evidence."""
    facts: Mapping[str, FactValue]
    """The figures the rule used; ``facts["reason"]`` names the rule (``churn_intent``,
    ``sentiment_drop``, ``legal_threat``, ...)."""


@dataclass(frozen=True, slots=True)
class _Context:
    new: ScoredInteraction
    customer_id: str
    rules: AlertRules
    before: tuple[ScoredInteraction, ...]
    """The customer's interactions up to ``new``'s time, ``new`` excluded, oldest first."""

    def draft(
        self,
        kind: AlertKind,
        severity: Severity,
        message: str,
        evidence: Iterable[Evidence],
        facts: Mapping[str, FactValue],
    ) -> AlertDraft:
        return AlertDraft(
            kind=kind,
            severity=severity,
            customer_id=self.customer_id,
            message=message,
            evidence=tuple(evidence),
            facts=MappingProxyType(
                {"interaction_kind": self.new.kind.value, **facts},
            ),
        )


def evaluate_alerts(
    new: ScoredInteraction,
    customer_id: str,
    history: Sequence[ScoredInteraction],
    *,
    rules: AlertRules,
) -> list[AlertDraft]:
    """The alerts ``new`` raises for ``customer_id``, at most one per kind, in the order of
    :class:`AlertKind`; none unless the customer speaks in ``new``.

    ``history`` is the customer's interactions committed before ``new``, in any order. Those
    that happened after ``new`` (they arrived first) are ignored, as is ``new`` itself if
    present, so ``new`` is judged on what was known at its own time. Where a kind has several
    reasons, the most severe is raised (ties: the first listed with the rule).
    """
    if not is_customer_voice(new):
        return []
    before = chronological(
        item
        for item in history
        if item.occur_time <= new.occur_time and item.interaction_id != new.interaction_id
    )
    context = _Context(new=new, customer_id=customer_id, rules=rules, before=before)
    drafts = []
    for kind, rule in _RULES.items():
        if kind in rules.enabled and (draft := rule(context)) is not None:
            drafts.append(draft)
    return drafts


def _negative_sentiment(c: _Context) -> AlertDraft | None:
    """Score at or below ``negative_threshold``, severity by the score's band. Cites the whole
    message: its tone, not one phrase, is the evidence."""
    score = c.new.signals.sentiment.score
    threshold = c.rules.negative_threshold
    if round(score, 9) > threshold:
        return None
    severity = (
        Severity.HIGH
        if score <= _SEVERE_SCORE
        else Severity.MEDIUM
        if score <= _MEDIUM_SCORE
        else Severity.LOW
    )
    message = (
        f"The customer's tone {_where(c.new)} scored {score:+.2f}, at or below the alert "
        f"threshold of {threshold:+.2f}."
    )
    facts: dict[str, FactValue] = {
        "reason": "negative_sentiment",
        "score": round(score, 4),
        "threshold": threshold,
    }
    return c.draft(AlertKind.NEGATIVE_SENTIMENT, severity, message, [_whole(c.new)], facts)


def _churn_risk(c: _Context) -> AlertDraft | None:
    """HIGH on churn intent (cites the churn mentions); else MEDIUM when the last messages,
    ``new`` among them, average ``churn_drop`` below the customer's baseline and ``new`` is
    itself below it (cites each recent message)."""
    if c.new.signals.churn_intent:
        terms = _terms(c.new, MentionKind.CHURN)
        message = f"The customer spoke of leaving {_where(c.new)} ({terms})."
        return c.draft(
            AlertKind.CHURN_RISK,
            Severity.HIGH,
            message,
            _spans(c.new, MentionKind.CHURN),
            {"reason": "churn_intent", "terms": terms},
        )
    shift = baseline_shift(
        (*c.before, c.new),
        recent=_RECENT_MESSAGES,
        baseline=_BASELINE_MESSAGES,
        min_points=_MIN_POINTS,
    )
    if (
        shift is None
        or round(shift.drop, 9) < c.rules.churn_drop
        or c.new.signals.sentiment.score >= shift.baseline_mean
    ):
        return None
    points, baseline_points = len(shift.recent), len(shift.baseline)
    message = (
        f"The customer's last {points} messages average {shift.recent_mean:+.2f} against "
        f"{shift.baseline_mean:+.2f} over the {baseline_points} before them, a drop of "
        f"{shift.drop:.2f}."
    )
    facts: dict[str, FactValue] = {
        "reason": "sentiment_drop",
        "recent_mean": round(shift.recent_mean, 4),
        "baseline_mean": round(shift.baseline_mean, 4),
        "drop": round(shift.drop, 4),
        "threshold": c.rules.churn_drop,
        "points": points,
        "baseline_points": baseline_points,
    }
    evidence = [_whole(item) for item in shift.recent]
    return c.draft(AlertKind.CHURN_RISK, Severity.MEDIUM, message, evidence, facts)


def _competitor_mention(c: _Context) -> AlertDraft | None:
    """LOW; MEDIUM when the same message speaks of leaving ("we are switching to ..."). Cites
    every competitor mention."""
    names = c.new.signals.competitors
    if not names:
        return None
    severity = Severity.MEDIUM if c.new.signals.churn_intent else Severity.LOW
    message = f"The customer mentioned {_listed(names)} {_where(c.new)}."
    facts: dict[str, FactValue] = {
        "reason": "competitor_mention",
        "competitors": ", ".join(names),
        "churn_intent": c.new.signals.churn_intent,
    }
    evidence = _spans(c.new, MentionKind.COMPETITOR)
    return c.draft(AlertKind.COMPETITOR_MENTION, severity, message, evidence, facts)


def _escalation(c: _Context) -> AlertDraft | None:
    """HIGH on a legal threat, MEDIUM on escalation language (each citing its mentions), else
    MEDIUM when ``new`` is the ``repeated_complaints``-th negative customer message within
    ``complaint_days`` (citing each, the latest 20 kept)."""
    signals = c.new.signals
    if signals.legal_threat:
        terms = _terms(c.new, MentionKind.LEGAL)
        message = f"The customer threatened legal action {_where(c.new)} ({terms})."
        evidence = _spans(c.new, MentionKind.LEGAL)
        facts: dict[str, FactValue] = {"reason": "legal_threat", "terms": terms}
        return c.draft(AlertKind.ESCALATION, Severity.HIGH, message, evidence, facts)
    if signals.escalation:
        terms = _terms(c.new, MentionKind.ESCALATION)
        message = f"The customer used escalation language {_where(c.new)} ({terms})."
        evidence = _spans(c.new, MentionKind.ESCALATION)
        facts = {"reason": "escalation_language", "terms": terms}
        return c.draft(AlertKind.ESCALATION, Severity.MEDIUM, message, evidence, facts)
    return _repeated_complaints(c)


def _repeated_complaints(c: _Context) -> AlertDraft | None:
    if not _complaint(c.new):
        return None
    days = c.rules.complaint_days
    start = c.new.occur_time - timedelta(days=days)
    complaints = [i for i in (*c.before, c.new) if i.occur_time >= start and _complaint(i)]
    if len(complaints) < c.rules.repeated_complaints:
        return None
    period = "day" if days == 1 else f"{days} days"
    message = f"The customer sent {len(complaints)} negative messages in the last {period}."
    facts: dict[str, FactValue] = {
        "reason": "repeated_complaints",
        "complaints": len(complaints),
        "complaint_days": days,
        "threshold": c.rules.repeated_complaints,
    }
    evidence = [_whole(item) for item in complaints[-_MAX_EVIDENCE:]]
    return c.draft(AlertKind.ESCALATION, Severity.MEDIUM, message, evidence, facts)


_RULES: Final[Mapping[AlertKind, Callable[[_Context], AlertDraft | None]]] = {
    AlertKind.NEGATIVE_SENTIMENT: _negative_sentiment,
    AlertKind.CHURN_RISK: _churn_risk,
    AlertKind.COMPETITOR_MENTION: _competitor_mention,
    AlertKind.ESCALATION: _escalation,
}


def _complaint(item: ScoredInteraction) -> bool:
    return is_customer_voice(item) and item.signals.sentiment.label in _NEGATIVE_LABELS


def _whole(item: ScoredInteraction) -> Evidence:
    return Evidence(item.interaction_id, 0, item.text_chars)


def _spans(item: ScoredInteraction, kind: MentionKind) -> list[Evidence]:
    return [Evidence(item.interaction_id, m.start, m.end) for m in item.signals.mentions_of(kind)]


def _terms(item: ScoredInteraction, kind: MentionKind) -> str:
    """The rules' canonical terms ("not renewing", "lawsuit"), never the customer's words."""
    return ", ".join(dict.fromkeys(m.term for m in item.signals.mentions_of(kind)))


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _where(item: ScoredInteraction) -> str:
    """``in an inbound email``, ``in a call``: where the customer spoke."""
    if item.kind in _CONVERSATIONS or item.direction is not Direction.INBOUND:
        return f"in a {item.kind.value}"
    return f"in an inbound {item.kind.value}"
