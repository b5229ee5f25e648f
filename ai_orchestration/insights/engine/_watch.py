"""WatchAlerts: replay the alert log after a sequence, then follow it, never buffering.

The log is the only source: a watcher reads pages of alerts after the last sequence it sent
and, when it has caught up, waits for a wake-up ("tenant T has new alerts", through the bus:
Redis across replicas, in-process otherwise) or a poll interval, then reads again. Replay and
live alerts come from the same reads, so the switch between them has no gap and no duplicate;
a consumer slower than the alerts only makes the reads lag behind (gRPC flow control holds the
writer), so the server never drops an alert nor holds more than one page per watcher.

Watchers of one tenant woken by the same alert read the same page: one read serves them all.
A watcher joins a read that started after it began to wait; should that read have started
before the commit that woke it, the announced sequence (the bus keeps the highest) is still
ahead of what the watcher got, and it reads again at once rather than wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from ai_orchestration.insights._records import StoredAlert

__all__ = ["AlertFilter", "AlertLog", "AlertWakeups", "AlertWatcher"]

PAGE: Final[int] = 256


class AlertLog(Protocol):
    """The per-tenant alert log (``storage.AlertRepository``)."""

    async def read(self, tenant_id: str, *, after: int, limit: int) -> list[StoredAlert]:
        """Alerts after ``after``, in sequence order."""

    async def last_sequence(self, tenant_id: str) -> int:
        """The newest sequence (0 before the first alert)."""


class AlertWakeups(Protocol):
    """Wake-ups when a tenant's log grows (the workflows' bus carries them)."""

    def waiter(
        self, topic: Literal["alert"], run_id: str = ""
    ) -> AbstractContextManager[asyncio.Event]:
        """An event set by the next "alert" message of the tenant (``run_id``)."""

    def latest_alert(self, tenant_id: str) -> int:
        """The highest sequence announced for the tenant (0 when none was)."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a watcher wants; empty sets mean all."""

    customer_ids: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    min_severity: int = 0

    @classmethod
    def of(
        cls, customer_ids: Collection[str], kinds: Collection[str], min_severity: int
    ) -> AlertFilter:
        """From a request's lists."""
        return cls(frozenset(customer_ids), frozenset(kinds), min_severity)

    def matches(self, alert: StoredAlert) -> bool:
        """Whether ``alert`` passes the filter."""
        return (
            (not self.customer_ids or alert.customer_id in self.customer_ids)
            and (not self.kinds or alert.kind in self.kinds)
            and alert.severity >= self.min_severity
        )


class AlertWatcher:
    """Streams one tenant's alerts to one caller."""

    def __init__(self, *, log: AlertLog, wakeups: AlertWakeups, poll_seconds: float) -> None:
        """``poll_seconds``: how long a caught-up watcher waits without a wake-up before reading
        again (short without Redis, where other replicas' alerts wake nobody here)."""
        self._log = log
        self._wakeups = wakeups
        self._poll = poll_seconds
        self._reads: dict[tuple[str, int], tuple[int, asyncio.Future[list[StoredAlert]]]] = {}
        self._clock = 0  # counts read starts and looks, to order them

    async def _page(self, tenant_id: str, after: int, looked: int) -> list[StoredAlert]:
        """The page after ``after``, from a read started at or after ``looked`` if one is in
        flight, else from a new one. The read runs in its own task, so a watcher that goes
        away (its stream cancelled) never cancels the others' read."""
        key = (tenant_id, after)
        current = self._reads.get(key)
        if current is None or current[0] < looked or current[1].done():
            self._clock += 1
            task = asyncio.ensure_future(self._log.read(tenant_id, after=after, limit=PAGE))
            current = (self._clock, task)
            self._reads[key] = current
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(current[1])

    def _forget(self, key: tuple[str, int], done: asyncio.Future[list[StoredAlert]]) -> None:
        if self._reads.get(key, (0, None))[1] is done:
            del self._reads[key]
        if not done.cancelled():
            done.exception()  # retrieved here; every waiter re-raises it

    async def watch(
        self, tenant_id: str, wanted: AlertFilter, *, after_sequence: int, from_start: bool = False
    ) -> AsyncIterator[StoredAlert]:
        """Alerts after ``after_sequence``, forever; with 0, only those raised from now on,
        unless ``from_start`` asks for the whole log first."""
        with self._wakeups.waiter("alert", tenant_id) as woken:
            # Subscribed before the first read: an alert committed after it wakes this watcher.
            cursor = after_sequence
            if not (cursor or from_start):
                cursor = await self._log.last_sequence(tenant_id)
            looked = self._clock
            fresh = False  # the last read was this watcher's own, started after it woke
            while True:
                woken.clear()
                page = await self._page(tenant_id, cursor, looked)
                for alert in page:
                    cursor = alert.sequence
                    if wanted.matches(alert):
                        yield alert
                self._clock += 1
                looked = self._clock
                if len(page) == PAGE:
                    continue
                if self._wakeups.latest_alert(tenant_id) > cursor and not fresh:
                    # The joined read may predate the commit that woke us: read once more,
                    # ourselves (an erased alert can leave the mark ahead for good).
                    fresh = True
                    continue
                fresh = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self._poll)
