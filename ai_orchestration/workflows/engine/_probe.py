"""The watchers' safety polls of runs that execute elsewhere, read together.

A watcher that the bus did not wake for ``watch_poll_seconds`` checks the log itself, in case a
notification was lost. For a run executing on this replica nothing can be lost
(:class:`~._recent.RecentEvents`); for any other run, queued here or executing on another
replica, one read per watcher and poll would be mostly empty reads, many per second with many
watchers. :class:`SequenceProbe` gathers the polls that fall within ``window`` of each other
and answers them with one query for the newest sequence of every run asked about
(:meth:`RunRepository.last_sequences
<ai_orchestration.storage.RunRepository.last_sequences>`); only a watcher whose run has newer
events reads the log. (``bench/bench_workflows.py`` measures the reads it saves.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Final

__all__ = ["PROBE_WINDOW_SECONDS", "SequenceProbe"]

_log = logging.getLogger(__name__)

PROBE_WINDOW_SECONDS: Final[float] = 0.05
"""How long the first poll of a batch waits for others to join it."""

Read = Callable[[Collection[str]], Awaitable[dict[str, int]]]
"""The newest sequence of each run id that exists."""


class SequenceProbe:
    """Answers "is there an event of run X after sequence s?" for many watchers with one read
    per ``window``."""

    def __init__(self, read: Read, *, window: float = PROBE_WINDOW_SECONDS) -> None:
        self._read = read
        self._window = window
        self._asked: dict[str, list[asyncio.Future[int | None]]] = {}
        self._batch: asyncio.Task[None] | None = None
        """The batch still gathering polls."""
        self._running: set[asyncio.Task[None]] = set()
        """Every batch not yet done (gathering or reading): held, so none is collected."""

    async def newer(self, run_id: str, sequence: int) -> bool:
        """Whether run ``run_id`` may have an event after ``sequence``: False only when the
        store said its newest is ``sequence`` or older. (A run the store does not hold, or a
        failed read, says True: the caller's own read of the log tells what is wrong.)"""
        answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(run_id, []).append(answer)
        if self._batch is None:
            self._batch = asyncio.create_task(self._answer(), name="watch-probe")
            self._running.add(self._batch)
            self._batch.add_done_callback(self._running.discard)
        last = await answer
        return last is None or last > sequence

    async def _answer(self) -> None:
        asked = self._asked
        found: dict[str, int] = {}
        try:
            await asyncio.sleep(self._window)
            # Later polls start the next batch: this one's answer may predate their events.
            asked, self._asked, self._batch = self._asked, {}, None
            found = await self._read(list(asked))
        except Exception:
            _log.warning(
                "reading the newest sequences of %d runs failed", len(asked), exc_info=True
            )
        finally:
            if self._batch is asyncio.current_task():  # cancelled while gathering
                asked, self._asked, self._batch = self._asked, {}, None
            _settle(asked, found)

    async def aclose(self) -> None:
        """Ends the batches under way; their polls are answered "maybe newer" (their watchers
        read the log themselves)."""
        batches = list(self._running)
        for batch in batches:
            batch.cancel()
        await asyncio.gather(*batches, return_exceptions=True)
        # A batch cancelled before it ran never answered: answer here.
        asked, self._asked, self._batch = self._asked, {}, None
        _settle(asked, {})


def _settle(asked: dict[str, list[asyncio.Future[int | None]]], found: dict[str, int]) -> None:
    """Answers the polls still waiting; a run not in ``found`` (not stored, or not read: a
    failed or cancelled read) gets ``None``, "maybe newer", and its watcher reads the log."""
    for run_id, answers in asked.items():
        for answer in answers:
            if not answer.done():
                answer.set_result(found.get(run_id))
