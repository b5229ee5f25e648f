"""What lets a watcher skip reading the log: the bus's announced sequences and the events the
executing replica keeps. Skipping is only allowed when nothing can be missed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from ai_orchestration.workflows import EventKind, RunEvent
from ai_orchestration.workflows.engine import LocalBus, RedisBus
from ai_orchestration.workflows.engine._recent import RecentEvents

RUN = "run-1"


def _event(sequence: int, run_id: str = RUN) -> RunEvent:
    return RunEvent(run_id, sequence, EventKind.STEP_STARTED, {"n": sequence}, datetime.now(UTC))


def _sequences(events: list[RunEvent] | None) -> list[int] | None:
    return None if events is None else [event.sequence for event in events]


def test_kept_events_cover_a_contiguous_range_up_to_the_announced_sequence() -> None:
    recent = RecentEvents()
    recent.open(RUN)
    for sequence in (3, 4, 5):
        recent.add(_event(sequence))
    assert _sequences(recent.covering(RUN, 2, 5)) == [3, 4, 5]
    assert _sequences(recent.covering(RUN, 3, 4)) == [4]
    assert _sequences(recent.covering(RUN, 5, 5)) == []  # nothing new


@pytest.mark.parametrize(
    ("after", "latest", "why"),
    [
        (1, 5, "event 2 was written before they were kept"),
        (2, 6, "event 6 was announced but not kept (a state change, another replica)"),
        (2, None, "no sequence announced: unknown"),
    ],
)
def test_the_log_is_read_when_any_event_is_missing(
    after: int, latest: int | None, why: str
) -> None:
    recent = RecentEvents()
    recent.open(RUN)
    for sequence in (3, 4, 5):
        recent.add(_event(sequence))
    assert recent.covering(RUN, after, latest) is None, why


def test_a_gap_inside_the_kept_events_forces_a_read() -> None:
    recent = RecentEvents()
    recent.open(RUN)
    for sequence in (3, 5):  # 4 came from the repository (a transition), not kept
        recent.add(_event(sequence))
    assert recent.covering(RUN, 2, 5) is None
    assert _sequences(recent.covering(RUN, 2, 3)) == [3]


def test_out_of_order_appends_are_handed_out_in_sequence_order() -> None:
    recent = RecentEvents()
    recent.open(RUN)
    for sequence in (4, 3):  # two concurrent appenders finished in the other order
        recent.add(_event(sequence))
    assert _sequences(recent.covering(RUN, 2, 4)) == [3, 4]


def test_only_runs_executing_here_are_kept_and_bounded() -> None:
    recent = RecentEvents(per_run=2)
    recent.add(_event(1, "elsewhere"))
    assert recent.covering("elsewhere", 0, 1) is None
    recent.open(RUN)
    for sequence in (1, 2, 3):
        recent.add(_event(sequence))
    assert recent.covering(RUN, 0, 3) is None  # 1 fell out of the window
    assert _sequences(recent.covering(RUN, 1, 3)) == [2, 3]
    recent.close(RUN)
    assert recent.covering(RUN, 1, 3) is None


def test_following_hands_out_every_kept_event_after_a_sequence_without_a_gap() -> None:
    recent = RecentEvents()
    assert recent.following(RUN, 0) is None  # not executing here: the log must be read
    recent.open(RUN)
    assert _sequences(recent.following(RUN, 4)) == []  # nothing written here yet
    for sequence in (5, 7, 6):
        recent.add(_event(sequence))
    assert _sequences(recent.following(RUN, 4)) == [5, 6, 7]
    assert _sequences(recent.following(RUN, 6)) == [7]
    assert _sequences(recent.following(RUN, 7)) == []
    assert recent.following(RUN, 3) is None  # event 4 was written before the execution here
    recent.add(_event(9))
    assert recent.following(RUN, 7) is None  # 8 is missing: written elsewhere, or in flight


def test_the_bus_tracks_the_latest_announced_sequence_of_watched_runs_only() -> None:
    bus = LocalBus()
    bus.deliver("event", RUN, 4)
    assert bus.latest(RUN) is None  # nobody watched it: nothing kept
    with bus.waiter("event", RUN) as woken:
        bus.deliver("event", RUN, 4)
        bus.deliver("event", RUN, 3)  # late message: never lowers it
        assert woken.is_set()
        assert bus.latest(RUN) == 4
        bus.deliver("event", RUN)  # a message that names no sequence: unknown again
        assert bus.latest(RUN) is None
        bus.deliver("event", RUN, 7)
        assert bus.latest(RUN) == 7
    assert bus.latest(RUN) is None  # the last watcher left


async def test_redis_bus_carries_the_sequence_between_replicas(redis_url: str) -> None:
    publisher_client = aioredis.Redis.from_url(redis_url)
    listener_client = aioredis.Redis.from_url(redis_url)
    publisher, listener = RedisBus(client=publisher_client), RedisBus(client=listener_client)
    try:
        await listener.start()
        with listener.waiter("event", RUN) as woken:
            await publisher.publish("event", RUN, 12)
            await asyncio.wait_for(woken.wait(), 5)
            assert listener.latest(RUN) == 12
    finally:
        await listener.aclose()
        await publisher.aclose()
        await publisher_client.aclose()
        await listener_client.aclose()
