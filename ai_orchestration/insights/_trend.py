"""Sentiment over a customer's history: least-squares trends and the drop against a baseline.

Insights (the SENTIMENT_TREND insight, the sentiment-decline risk) and alert rules (a churn risk
when the last messages fall below the customer's own baseline) ask the same questions of the
same points, so the answers live here once. Only the customer's own voice counts
(:func:`is_customer_voice`): our replies are polite by policy and would flatten every trend.
Everything is a pure function of its arguments; "now" is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ai_orchestration.insights._types import Direction, Interaction, InteractionKind, Signals

_DAY: Final = timedelta(days=1)
_CONVERSATIONS: Final = frozenset({InteractionKind.CALL, InteractionKind.MEETING})
_EVIDENCE_POINTS: Final[float] = 3.0  # points at which the count factor of confidence is 0.5
_FLAT: Final[float] = 1e-12


@dataclass(frozen=True, slots=True)
class ScoredInteraction:
    """An interaction's metadata and the signals ingest stored for it: what the rules read.

    The text itself is left out so that storage can load a long history cheaply; mention spans
    in :attr:`signals` index :attr:`Interaction.text`, which the servicer quotes from.
    """

    interaction_id: str
    """The caller's id, as cited in evidence."""
    occur_time: datetime
    """When it happened (timezone-aware)."""
    kind: InteractionKind
    """The channel."""
    direction: Direction
    """Inbound, outbound or internal."""
    signals: Signals
    """What ingest computed for it."""
    text_chars: int
    """``len(Interaction.text)``: a citation of the whole interaction (a trend's point, the
    last contact before a silence) spans ``0..text_chars``."""

    def __post_init__(self) -> None:
        if self.occur_time.utcoffset() is None:
            raise ValueError("occur_time must be timezone-aware")
        if self.text_chars < 0:
            raise ValueError("text_chars must not be negative")

    @classmethod
    def of(cls, interaction: Interaction, signals: Signals) -> ScoredInteraction:
        """The record of ``interaction`` with the ``signals`` extracted from it."""
        return cls(
            interaction_id=interaction.interaction_id,
            occur_time=interaction.occur_time,
            kind=interaction.kind,
            direction=interaction.direction,
            signals=signals,
            text_chars=len(interaction.text),
        )


class TrendDirection(StrEnum):
    """Where the fitted line goes across a window."""

    IMPROVING = "improving"
    DECLINING = "declining"
    STABLE = "stable"


@dataclass(frozen=True, slots=True)
class LineFit:
    """A least-squares line ``y = slope * x + intercept`` and how well it fits."""

    slope: float
    intercept: float
    r_squared: float
    """Share of the variance the line explains, 0..1; 1 when the points do not vary at all."""


@dataclass(frozen=True, slots=True)
class Trend:
    """The customer's sentiment across one window of their messages."""

    window: str
    """``last_30_days``, ``last_6_messages``: a stable name for facts and wording."""
    unit: str
    """What one step of x is: ``day`` or ``message``."""
    slope: float
    """Sentiment score change per :attr:`unit`, from the least-squares line."""
    change: float
    """The fitted change from the first point to the last (slope times their distance)."""
    direction: TrendDirection
    """Declining or improving when :attr:`change` reaches the threshold, else stable."""
    r_squared: float
    """How well the line fits the points, 0..1."""
    confidence: float
    """``n / (n + 3) * (0.5 + 0.5 * r_squared)`` for n points: more points and a tighter
    line make the direction more believable."""
    interactions: tuple[ScoredInteraction, ...]
    """The points, oldest first: the evidence of the trend."""

    @property
    def points(self) -> int:
        """How many messages the line was fitted to."""
        return len(self.interactions)

    @property
    def mean(self) -> float:
        """Mean sentiment score of the points."""
        return _mean(self.interactions)


@dataclass(frozen=True, slots=True)
class BaselineShift:
    """The customer's latest messages against their own earlier ones.

    A customer who is always terse is not at risk for being terse; one who turns terse is.
    """

    baseline_mean: float
    """Mean sentiment score of the earlier messages."""
    recent_mean: float
    """Mean sentiment score of the latest messages."""
    drop: float
    """``baseline_mean - recent_mean``: positive when the latest messages are worse."""
    baseline: tuple[ScoredInteraction, ...]
    """The earlier messages, oldest first."""
    recent: tuple[ScoredInteraction, ...]
    """The latest messages, oldest first."""


def is_customer_voice(item: ScoredInteraction) -> bool:
    """Whether the customer speaks in ``item``: anything inbound, and calls and meetings that
    are not internal (a transcript holds both sides, whoever dialled)."""
    if item.direction is Direction.INBOUND:
        return True
    return item.kind in _CONVERSATIONS and item.direction is not Direction.INTERNAL


def chronological(history: Iterable[ScoredInteraction]) -> tuple[ScoredInteraction, ...]:
    """``history`` oldest first, ties broken by id, so that any input order gives one answer."""
    return tuple(sorted(history, key=lambda item: (item.occur_time, item.interaction_id)))


def customer_messages(history: Iterable[ScoredInteraction]) -> tuple[ScoredInteraction, ...]:
    """The interactions in which the customer speaks, oldest first."""
    return tuple(item for item in chronological(history) if is_customer_voice(item))


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> LineFit | None:
    """The least-squares line through the points; ``None`` for fewer than two distinct xs."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return None
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0.0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    # Equal scores leave a rounding residue in syy; a flat series is fitted exactly.
    r_squared = 1.0 if syy <= _FLAT else min(1.0, (sxy * sxy) / (sxx * syy))
    return LineFit(slope=slope, intercept=intercept, r_squared=r_squared)


def direction_of(change: float, min_change: float) -> TrendDirection:
    """Improving at ``change >= min_change``, declining at ``change <= -min_change``."""
    change = round(change, 9)  # a change of exactly the threshold must not miss it by 1e-17
    if change >= min_change:
        return TrendDirection.IMPROVING
    if change <= -min_change:
        return TrendDirection.DECLINING
    return TrendDirection.STABLE


def trend_over_days(
    history: Iterable[ScoredInteraction],
    *,
    now: datetime,
    days: int,
    min_points: int = 3,
    min_change: float = 0.2,
) -> Trend | None:
    """The trend of the customer's messages in the ``days`` before ``now``, slope per day.

    ``None`` with fewer than ``min_points`` messages or all of them at one instant.
    """
    start = now - timedelta(days=days)
    points = [m for m in customer_messages(history) if start <= m.occur_time <= now]
    xs = [(m.occur_time - now) / _DAY for m in points]
    window = f"last_{days}_days"
    return _trend(window, "day", points, xs, min_points=min_points, min_change=min_change)


def trend_over_messages(
    history: Iterable[ScoredInteraction],
    *,
    count: int = 6,
    min_points: int = 3,
    min_change: float = 0.2,
) -> Trend | None:
    """The trend of the customer's last ``count`` messages, slope per message.

    Time between messages is ignored on purpose: a burst of angry e-mails in one afternoon is
    as much a decline as the same e-mails a week apart. ``None`` with fewer than ``min_points``.
    """
    points = list(customer_messages(history)[-count:]) if count > 0 else []
    xs = [float(i) for i in range(len(points))]
    window = f"last_{count}_messages"
    return _trend(window, "message", points, xs, min_points=min_points, min_change=min_change)


def baseline_shift(
    history: Iterable[ScoredInteraction],
    *,
    recent: int = 6,
    baseline: int = 20,
    min_points: int = 3,
) -> BaselineShift | None:
    """The last ``recent`` customer messages against the ``baseline`` messages before them.

    ``None`` unless both groups hold at least ``min_points`` messages.
    """
    messages = customer_messages(history)
    if recent <= 0 or baseline <= 0:
        return None
    latest = messages[-recent:]
    earlier = messages[: len(messages) - len(latest)][-baseline:]
    if len(latest) < min_points or len(earlier) < min_points:
        return None
    baseline_mean, recent_mean = _mean(earlier), _mean(latest)
    return BaselineShift(
        baseline_mean=baseline_mean,
        recent_mean=recent_mean,
        drop=baseline_mean - recent_mean,
        baseline=earlier,
        recent=latest,
    )


def _trend(
    window: str,
    unit: str,
    points: Sequence[ScoredInteraction],
    xs: Sequence[float],
    *,
    min_points: int,
    min_change: float,
) -> Trend | None:
    if len(points) < max(2, min_points):
        return None
    fit = fit_line(xs, [m.signals.sentiment.score for m in points])
    if fit is None:
        return None
    change = fit.slope * (xs[-1] - xs[0])
    n = len(points)
    confidence = n / (n + _EVIDENCE_POINTS) * (0.5 + 0.5 * fit.r_squared)
    return Trend(
        window=window,
        unit=unit,
        slope=fit.slope,
        change=change,
        direction=direction_of(change, min_change),
        r_squared=fit.r_squared,
        confidence=round(confidence, 4),
        interactions=tuple(points),
    )


def _mean(items: Sequence[ScoredInteraction]) -> float:
    return sum(m.signals.sentiment.score for m in items) / len(items) if items else 0.0
