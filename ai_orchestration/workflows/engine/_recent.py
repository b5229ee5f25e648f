"""The events a replica just wrote, kept in memory for the watchers on the same replica.

Without it, a watcher woken by the bus reads the log for every event: one query per event, the
largest cost of a streamed run. The replica executing a run has each event in hand when
:meth:`RunRepository.append_event <ai_orchestration.storage.RunRepository.append_event>`
returns (it is durable by then), so it keeps the last few of each run it executes here.
:meth:`RecentEvents.covering` hands them out only when they are exactly the events the log
holds after the watcher's sequence up to the newest sequence announced on the bus: any event
it does not hold (an event written by another replica, or before the execution here began)
makes the watcher read the log, so the log stays the source of truth and nothing is skipped.

:meth:`RecentEvents.following` serves the watchers' safety poll of a run that executes here:
this replica is then the run's only writer, so the events it keeps are the whole log after
the watcher's sequence, and the poll needs no read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Final

from ai_orchestration.workflows._types import RunEvent

__all__ = ["RecentEvents", "contiguous"]

_PER_RUN: Final[int] = 256
"""Events kept per run; a watcher further behind reads the log."""


class RecentEvents:
    """The last :data:`_PER_RUN` events this replica appended to each run it executes."""

    def __init__(self, per_run: int = _PER_RUN) -> None:
        self._per_run = per_run
        self._runs: dict[str, deque[RunEvent]] = {}

    def open(self, run_id: str) -> None:
        """Start keeping the events of ``run_id`` (its execution began here)."""
        self._runs.setdefault(run_id, deque(maxlen=self._per_run))

    def close(self, run_id: str) -> None:
        """Forget ``run_id`` (its execution here ended); its watchers read the log."""
        self._runs.pop(run_id, None)

    def add(self, event: RunEvent) -> None:
        """Keep ``event`` (already durable) if its run is open."""
        kept = self._runs.get(event.run_id)
        if kept is not None:
            kept.append(event)

    def covering(self, run_id: str, after: int, latest: int | None) -> list[RunEvent] | None:
        """The events with sequences ``after + 1 .. latest``, if every one of them is kept;
        ``None`` when the log must be read (``latest`` unknown, or an event missing)."""
        kept = self._runs.get(run_id)
        if latest is None or kept is None:
            return None
        return contiguous(kept, after, latest)

    def following(self, run_id: str, after: int) -> list[RunEvent] | None:
        """Every kept event of ``run_id`` after ``after``, if they run on from ``after + 1``
        without a gap (``[]`` when none is newer); ``None`` when the run is not kept, or an
        event is missing. Only the caller knows whether what is kept is the whole log."""
        kept = self._runs.get(run_id)
        if kept is None:
            return None
        newest = max((event.sequence for event in kept), default=after)
        return contiguous(kept, after, newest)


def contiguous(events: Iterable[RunEvent], after: int, latest: int) -> list[RunEvent] | None:
    """The events of one run with sequences ``after + 1 .. latest`` in order, if ``events``
    holds every one of them; else ``None``."""
    if latest <= after:
        return []
    # Concurrent appenders may finish out of order: sort; sequences are unique, so the count
    # tells whether every one is there.
    wanted = sorted(
        (event for event in events if after < event.sequence <= latest),
        key=lambda event: event.sequence,
    )
    return wanted if len(wanted) == latest - after else None
