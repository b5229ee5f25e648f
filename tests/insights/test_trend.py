"""Sentiment trends and baselines: least squares on hand-computed points, windows, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ai_orchestration.insights import (
    Direction,
    Interaction,
    InteractionKind,
    ScoredInteraction,
    Sentiment,
    Signals,
    TrendDirection,
    baseline_shift,
    customer_messages,
    direction_of,
    fit_line,
    is_customer_voice,
    label_of,
    trend_over_days,
    trend_over_messages,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def signals(score: float) -> Signals:
    return Signals(
        sentiment=Sentiment(score, label_of(score), 0.9),
        competitors=(),
        pricing=False,
        churn_intent=False,
        escalation=False,
        legal_threat=False,
        mentions=(),
    )


def point(
    interaction_id: str,
    days_ago: float,
    score: float,
    *,
    direction: Direction = Direction.INBOUND,
    kind: InteractionKind = InteractionKind.EMAIL,
) -> ScoredInteraction:
    return ScoredInteraction(
        interaction_id=interaction_id,
        occur_time=NOW - timedelta(days=days_ago),
        kind=kind,
        direction=direction,
        signals=signals(score),
        text_chars=100,
    )


def test_fit_line_on_hand_computed_points() -> None:
    exact = fit_line([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert exact is not None
    assert (exact.slope, exact.intercept, exact.r_squared) == pytest.approx((2.0, 1.0, 1.0))
    # xs 0..3, ys 0 1 0 1: sxx = 5, sxy = 1, syy = 1, so slope 0.2 and r^2 = 1 / 5.
    noisy = fit_line([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 0.0, 1.0])
    assert noisy is not None
    assert (noisy.slope, noisy.intercept, noisy.r_squared) == pytest.approx((0.2, 0.2, 0.2))
    flat = fit_line([0.0, 1.0, 2.0], [0.4, 0.4, 0.4])
    assert flat is not None
    assert (flat.slope, flat.r_squared) == (0.0, 1.0)


def test_fit_line_needs_two_distinct_xs() -> None:
    assert fit_line([1.0], [0.5]) is None
    assert fit_line([2.0, 2.0, 2.0], [0.1, 0.5, 0.9]) is None
    with pytest.raises(ValueError):
        fit_line([0.0, 1.0], [0.5])


def test_trend_over_the_last_messages() -> None:
    history = [
        point("old-1", 60, -0.9),  # older than the last six: not a point
        point("old-2", 50, -0.9),
        *(point(f"m{i}", 40 - 5 * i, 0.6 - 0.2 * i) for i in range(6)),  # 0.6 .. -0.4
        point("reply", 1, 0.9, direction=Direction.OUTBOUND),  # our words: not a point
    ]
    trend = trend_over_messages(history, count=6)
    assert trend is not None
    assert trend.window == "last_6_messages"
    assert trend.unit == "message"
    assert trend.slope == pytest.approx(-0.2)
    assert trend.change == pytest.approx(-1.0)
    assert trend.direction is TrendDirection.DECLINING
    assert trend.r_squared == pytest.approx(1.0)
    assert trend.confidence == pytest.approx(6 / 9, abs=1e-4)  # n / (n + 3) * (0.5 + 0.5 * 1)
    assert [m.interaction_id for m in trend.interactions] == [f"m{i}" for i in range(6)]
    assert trend.mean == pytest.approx(0.1)


def test_trend_over_days_uses_time_and_its_window() -> None:
    history = [
        point("a", 45, -0.9),  # outside 30 days
        point("b", 28, 0.1),
        point("c", 14, 0.3),
        point("d", 0, 0.5),
    ]
    month = trend_over_days(history, now=NOW, days=30)
    assert month is not None
    assert month.points == 3
    assert month.slope == pytest.approx(0.2 / 14)  # per day
    assert month.change == pytest.approx(0.4)
    assert month.direction is TrendDirection.IMPROVING
    quarter = trend_over_days(history, now=NOW, days=90)
    assert quarter is not None and quarter.points == 4
    assert [m.interaction_id for m in quarter.interactions] == ["a", "b", "c", "d"]


def test_direction_thresholds() -> None:
    assert direction_of(0.2, 0.2) is TrendDirection.IMPROVING
    assert direction_of(0.1999, 0.2) is TrendDirection.STABLE
    assert direction_of(-0.2, 0.2) is TrendDirection.DECLINING
    # A fitted change of exactly the threshold counts despite floating-point error.
    trend = trend_over_messages([point(f"m{i}", 10 - i, 0.1 * i) for i in range(3)])
    assert trend is not None and trend.direction is TrendDirection.IMPROVING
    stable = trend_over_messages(
        [point(f"m{i}", 10 - i, s) for i, s in enumerate([0.1, 0.15, 0.1, 0.12])]
    )
    assert stable is not None and stable.direction is TrendDirection.STABLE


def test_no_trend_from_too_few_points() -> None:
    two = [point("a", 5, 0.5), point("b", 1, -0.5)]
    assert trend_over_messages(two) is None
    assert trend_over_days(two, now=NOW, days=30) is None
    assert trend_over_messages(two, min_points=2) is not None
    same_instant = [point(f"m{i}", 3, 0.1 * i) for i in range(4)]
    assert trend_over_days(same_instant, now=NOW, days=30) is None


def test_baseline_shift_against_the_customers_own_messages() -> None:
    history = [
        *(point(f"base{i}", 100 - i, 0.5) for i in range(5)),
        *(point(f"new{i}", 10 - i, -0.1) for i in range(6)),
    ]
    shift = baseline_shift(history, recent=6, baseline=20)
    assert shift is not None
    assert shift.baseline_mean == pytest.approx(0.5)
    assert shift.recent_mean == pytest.approx(-0.1)
    assert shift.drop == pytest.approx(0.6)
    assert [m.interaction_id for m in shift.recent] == [f"new{i}" for i in range(6)]
    limited = baseline_shift(history, recent=6, baseline=3)
    assert limited is not None
    assert [m.interaction_id for m in limited.baseline] == ["base2", "base3", "base4"]
    assert baseline_shift(history[3:], recent=6) is None  # two baseline messages only
    assert baseline_shift(history[:7], recent=6) is None  # one baseline message


def test_the_customers_voice() -> None:
    assert is_customer_voice(point("a", 1, 0))
    assert not is_customer_voice(point("a", 1, 0, direction=Direction.OUTBOUND))
    assert not is_customer_voice(point("a", 1, 0, direction=Direction.UNKNOWN))
    outbound_call = point("a", 1, 0, direction=Direction.OUTBOUND, kind=InteractionKind.CALL)
    assert is_customer_voice(outbound_call)
    internal = point("a", 1, 0, direction=Direction.INTERNAL, kind=InteractionKind.MEETING)
    assert not is_customer_voice(internal)
    shuffled = [point("b", 1, 0), point("x", 2, 0, direction=Direction.OUTBOUND), point("a", 1, 0)]
    assert [m.interaction_id for m in customer_messages(shuffled)] == ["a", "b"]


def test_scored_interaction_of_an_interaction() -> None:
    interaction = Interaction(
        interaction_id="em-1",
        customer_id="acct",
        kind=InteractionKind.EMAIL,
        direction=Direction.INBOUND,
        occur_time=NOW,
        subject="Hi",
        body="Body.",
    )
    scored = ScoredInteraction.of(interaction, signals(0.0))
    assert scored.text_chars == len(interaction.text) == 9
    assert (scored.interaction_id, scored.kind, scored.direction) == (
        "em-1",
        InteractionKind.EMAIL,
        Direction.INBOUND,
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        ScoredInteraction(
            "x", datetime(2025, 1, 1), InteractionKind.EMAIL, Direction.INBOUND, signals(0), 1
        )
