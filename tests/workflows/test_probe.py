"""The watchers' safety polls of runs executing elsewhere: many polls, one read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

import pytest

from ai_orchestration.workflows.engine._probe import SequenceProbe


class Store:
    """The newest sequence of each run, counting the reads."""

    def __init__(self, newest: dict[str, int]) -> None:
        self.newest = newest
        self.reads: list[list[str]] = []
        self.fail = False

    async def read(self, run_ids: Collection[str]) -> dict[str, int]:
        self.reads.append(sorted(run_ids))
        if self.fail:
            raise ConnectionError("database gone")
        return {run_id: self.newest[run_id] for run_id in run_ids if run_id in self.newest}


async def test_polls_within_the_window_share_one_read() -> None:
    store = Store({"a": 5, "b": 3})
    probe = SequenceProbe(store.read, window=0.02)
    answers = list(
        await asyncio.gather(
            probe.newer("a", 5),  # up to date
            probe.newer("a", 4),  # one behind
            probe.newer("b", 3),
            probe.newer("gone", 0),  # not stored: the caller's own read says what is wrong
        )
    )
    assert answers == [False, True, False, True]
    assert store.reads == [["a", "b", "gone"]]


async def test_a_poll_after_a_batch_started_reading_waits_for_the_next_read() -> None:
    store = Store({"a": 1})
    probe = SequenceProbe(store.read, window=0.02)
    first = asyncio.create_task(probe.newer("a", 1))
    await asyncio.sleep(0.05)  # the first batch has read
    assert await first is False
    store.newest["a"] = 2  # an event nobody announced
    assert await probe.newer("a", 1) is True
    assert len(store.reads) == 2


async def test_a_failed_read_answers_maybe_newer_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store({"a": 1})
    store.fail = True
    probe = SequenceProbe(store.read, window=0.01)
    with caplog.at_level(logging.WARNING, logger="ai_orchestration.workflows.engine._probe"):
        answers = await asyncio.gather(probe.newer("a", 1), probe.newer("b", 0))
    assert list(answers) == [True, True]
    assert "reading the newest sequences of 2 runs failed" in caplog.text


async def test_closing_answers_the_waiting_polls() -> None:
    store = Store({"a": 1})
    probe = SequenceProbe(store.read, window=10)
    waiting = asyncio.create_task(probe.newer("a", 1))
    await asyncio.sleep(0)
    await probe.aclose()
    assert await asyncio.wait_for(waiting, 1) is True  # unanswered: the watcher reads the log
    assert store.reads == []


async def test_a_cancelled_poll_leaves_the_others_answered() -> None:
    store = Store({"a": 1, "b": 2})
    probe = SequenceProbe(store.read, window=0.02)
    gone = asyncio.create_task(probe.newer("a", 0))
    kept = asyncio.create_task(probe.newer("b", 2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept is False
    assert gone.cancelled()


async def test_closing_during_a_read_answers_its_polls() -> None:
    reading = asyncio.Event()

    async def hanging_read(run_ids: Collection[str]) -> dict[str, int]:
        reading.set()
        await asyncio.Event().wait()  # a database that never answers
        return {}

    probe = SequenceProbe(hanging_read, window=0.01)
    waiting = asyncio.create_task(probe.newer("a", 1))
    await asyncio.wait_for(reading.wait(), 1)
    await probe.aclose()
    assert await asyncio.wait_for(waiting, 1) is True
