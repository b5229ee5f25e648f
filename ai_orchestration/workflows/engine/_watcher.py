"""Watching runs: each watcher gets a run's events in order, from the cheapest source that has
exactly them.

The event log in the database is the source of truth; the rest only spares reads of it. A
watcher waits on the bus (:mod:`._notify`) for news of its run, or for the safety poll, and
then takes the events after its sequence from the first of these that can vouch for them:

1. **What it already holds**: on its first pass, the events the caller had in hand (the first
   event of a run it just created), when they are every event up to the run's last sequence.
2. **Announced events** (woken by the bus): the events this replica keeps of the run
   (:class:`~._recent.RecentEvents`), when they are exactly the log after the watcher's
   sequence up to the newest sequence announced.
3. **The run's only writer** (first pass or poll, the run executing here under this replica's
   lease): the events kept here are then the whole log after the watcher's sequence.
4. **The sequence probe** (a poll of a run executing elsewhere, or queued): one query for the
   polls of many watchers (:class:`~._probe.SequenceProbe`) says whether there is anything
   newer at all.
5. **The log**, when none of the above vouches.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

from ai_orchestration.storage import RunRepository
from ai_orchestration.workflows._types import (
    TERMINAL_STATES,
    EventKind,
    RunEvent,
    RunRecord,
    RunState,
)
from ai_orchestration.workflows.engine._notify import LocalBus, wait_for
from ai_orchestration.workflows.engine._probe import SequenceProbe
from ai_orchestration.workflows.engine._recent import RecentEvents, contiguous

__all__ = ["RunWatcher"]

WATCH_PAGE: Final[int] = 500
"""Events read from the log per query while watching."""


class _Pass(enum.Enum):
    """Why a watcher looks for events."""

    FIRST = enum.auto()
    ANNOUNCED = enum.auto()
    """The bus announced a newer sequence of the run."""
    POLL = enum.auto()
    """The safety poll: no announcement for ``poll_seconds``."""


class RunWatcher:
    """Announces the events written on this replica and hands runs' events to watchers."""

    def __init__(
        self,
        *,
        runs: RunRepository,
        bus: LocalBus,
        poll_seconds: Callable[[], float],
        sole_writer: Callable[[str], bool],
    ) -> None:
        """``poll_seconds()``: how long a watcher waits for news before its safety poll (read
        at each wait: the engine's settings may change). ``sole_writer(run_id)``: whether
        every event of the run is written here now (it executes here under this replica's
        lease)."""
        self._runs = runs
        self._bus = bus
        self._poll_seconds = poll_seconds
        self._sole_writer = sole_writer
        self._recent = RecentEvents()
        self._probe = SequenceProbe(runs.last_sequences)

    def open(self, run_id: str) -> None:
        """Keep the events of ``run_id`` from now on: it executes here."""
        self._recent.open(run_id)

    def close(self, run_id: str) -> None:
        """Stop keeping the events of ``run_id``."""
        self._recent.close(run_id)

    async def announce(self, *events: RunEvent) -> None:
        """Tell watchers (here and on other replicas) that ``events`` are in the log, and keep
        them for the ones here: one message per run, naming its newest sequence."""
        newest: dict[str, int] = {}
        for event in events:
            self._recent.add(event)
            newest[event.run_id] = max(event.sequence, newest.get(event.run_id, 0))
        for run_id, sequence in newest.items():
            await self._bus.publish("event", run_id, sequence)

    async def watch(
        self,
        tenant_id: str,
        run_id: str,
        *,
        after_sequence: int = 0,
        until_waiting: bool = False,
        run: RunRecord | None = None,
        known: Sequence[RunEvent] = (),
    ) -> AsyncIterator[RunEvent]:
        """The run's events after ``after_sequence``: the stored ones, then live ones as they
        are written, until the run ends (or waits for a human, with ``until_waiting``).

        Every state change is itself an event, so the log alone says when to stop: a watcher
        never reads the run row after the start. ``run`` is the run as the caller already has
        it, and ``known`` the events it already holds (see the module). An event written
        before the watcher listened is seen at the next announcement, which reads from its
        sequence.
        """
        if run is None:
            run = await self._runs.get(tenant_id, run_id)  # NOT_FOUND before anything is sent
        state, sequence = run.state, after_sequence
        why = _Pass.FIRST
        held = contiguous(known, sequence, run.last_sequence) if known else None
        with self._bus.waiter("event", run_id) as woken:
            while True:
                events = held if held is not None else await self._events(run, sequence, why)
                held = None
                for event in events:
                    sequence = event.sequence
                    if event.kind is EventKind.STATE_CHANGED:
                        state = RunState(str(event.payload.get("to")))
                    yield event
                if len(events) == WATCH_PAGE or (events and sequence < run.last_sequence):
                    continue  # more to take at once, from the same sources
                if state in TERMINAL_STATES or (
                    until_waiting and state is RunState.WAITING_FOR_INPUT
                ):
                    return
                woke = await wait_for(woken, self._poll_seconds())
                why = _Pass.ANNOUNCED if woke else _Pass.POLL

    async def _events(self, run: RunRecord, sequence: int, why: _Pass) -> list[RunEvent]:
        """The events after ``sequence``, from the first source that vouches for them."""
        run_id = run.run_id
        kept: list[RunEvent] | None = None
        if why is _Pass.ANNOUNCED:
            kept = self._recent.covering(run_id, sequence, self._bus.latest(run_id))
        elif self._sole_writer(run_id):
            kept = self._recent.following(run_id, sequence)
        elif why is _Pass.POLL and not await self._probe.newer(run_id, sequence):
            kept = []
        if kept is not None:
            return kept
        return await self._runs.events_after(run.tenant_id, run_id, sequence, WATCH_PAGE)

    async def aclose(self) -> None:
        """Stop the sequence probe."""
        await self._probe.aclose()
