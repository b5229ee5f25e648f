"""Insights as the rules decide them (kind, code, confidence, evidence spans and facts), and the
knobs of those rules.

The record storage keeps and the servicer converts; the rules (:mod:`._rules`) and the action
table (:mod:`._actions`) build every draft through :func:`make_draft`, so the deterministic title
and description are always worded from the facts alone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ai_orchestration.insights._trend import ScoredInteraction
from ai_orchestration.insights._types import MentionKind
from ai_orchestration.insights._wording import FactValue, wording


class InsightKind(StrEnum):
    """The four kinds of insight GenerateInsights produces."""

    RISK = "risk"
    OPPORTUNITY = "opportunity"
    SENTIMENT_TREND = "sentiment_trend"
    NEXT_BEST_ACTION = "next_best_action"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A span of one interaction's text that supports an insight (offsets index
    :attr:`Interaction.text`; ``0..len(text)`` cites the whole interaction)."""

    interaction_id: str
    """The caller's id of the cited interaction."""
    start: int
    """Offset of the span's first character."""
    end: int
    """Offset just past the span's last character."""


@dataclass(frozen=True, slots=True)
class InsightDraft:
    """An insight as the rules decided it, before storage gives it an id and a time."""

    kind: InsightKind
    """Risk, opportunity, sentiment trend or next best action."""
    code: str
    """Which rule decided it, stable across releases: ``churn_intent``, ``nba_check_in``."""
    confidence: float
    """0..1, from the formula documented with the rule."""
    title: str
    """Deterministic one-line title built from :attr:`facts` alone."""
    description: str
    """Deterministic explanation built from :attr:`facts` alone."""
    evidence: tuple[Evidence, ...]
    """The spans that support it, oldest first."""
    facts: Mapping[str, FactValue]
    """The figures the rule used (days silent, slope, counts): all an LLM may word from."""


@dataclass(frozen=True, slots=True)
class InsightRules:
    """The knobs of the rules; the defaults are what GenerateInsights uses."""

    lookback_days: int = 90
    """Churn, escalation, competitor and opportunity mentions count this many days back."""
    silence_days: int = 21
    """No interaction (other than internal notes) for this many days is a risk."""
    unanswered_outbound: int = 3
    """This many outbound messages since the customer last spoke is a risk."""
    trend_days: tuple[int, ...] = (30, 90)
    """Time windows of the sentiment trend; the shortest also feeds the decline risk."""
    trend_messages: int = 6
    """The customer's last messages forming the message-window trend and the recent group of
    the baseline comparison."""
    min_trend_points: int = 3
    """Fewer messages than this in a window make no trend."""
    trend_min_change: float = 0.2
    """A fitted change of at least this across a window is a direction, not noise: half a
    sentiment band (see ``LABEL_THRESHOLDS``)."""
    baseline_messages: int = 20
    """Messages before the recent ones forming the customer's own baseline."""
    decline_drop: float = 0.3
    """A recent mean this far below the baseline mean is a sentiment decline."""
    negative_score: float = -0.2
    """A score at or below this is negative (the upper edge of the negative band)."""
    pricing_after_days: int = 30
    """Pricing not discussed is a risk once the first interaction is this old ..."""
    pricing_min_interactions: int = 6
    """... and at least this many interactions with the customer took place."""
    max_evidence: int = 5
    """Spans cited per insight, the latest kept."""
    max_actions: int = 3
    """Next best actions returned, the highest ranked kept."""

    def __post_init__(self) -> None:
        counts = {
            "lookback_days": self.lookback_days,
            "silence_days": self.silence_days,
            "unanswered_outbound": self.unanswered_outbound,
            "trend_messages": self.trend_messages,
            "min_trend_points": self.min_trend_points,
            "baseline_messages": self.baseline_messages,
            "pricing_after_days": self.pricing_after_days,
            "pricing_min_interactions": self.pricing_min_interactions,
            "max_evidence": self.max_evidence,
            "max_actions": self.max_actions,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not self.trend_days or min(self.trend_days) < 1:
            raise ValueError("trend_days must hold positive day counts")
        if self.min_trend_points < 2:
            raise ValueError("min_trend_points must be at least 2: a line needs two points")
        if self.trend_min_change <= 0.0 or self.decline_drop <= 0.0:
            raise ValueError("trend_min_change and decline_drop must be positive")


def make_draft(
    kind: InsightKind,
    code: str,
    confidence: float,
    evidence: Iterable[Evidence],
    facts: Mapping[str, FactValue],
) -> InsightDraft:
    """A draft worded from ``facts``, its confidence clamped to 0..1 and rounded to 4 places
    (so that equal inputs compare equal however the formula was evaluated)."""
    frozen = MappingProxyType(dict(facts))
    title, description = wording(code, frozen)
    return InsightDraft(
        kind=kind,
        code=code,
        confidence=round(min(1.0, max(0.0, confidence)), 4),
        title=title,
        description=description,
        evidence=tuple(evidence),
        facts=frozen,
    )


def spans_of(
    items: Sequence[ScoredInteraction], kinds: Collection[MentionKind], limit: int
) -> tuple[Evidence, ...]:
    """The spans of ``items``' mentions of ``kinds``, oldest first, the latest ``limit`` kept."""
    spans = [
        Evidence(item.interaction_id, m.start, m.end)
        for item in items
        for m in item.signals.mentions
        if m.kind in kinds
    ]
    return tuple(spans[-limit:])


def whole_of(items: Sequence[ScoredInteraction], limit: int) -> tuple[Evidence, ...]:
    """Whole-interaction spans of the latest ``limit`` of ``items``: the evidence of a trend or
    a silence, which no single phrase carries."""
    return tuple(Evidence(item.interaction_id, 0, item.text_chars) for item in items[-limit:])
