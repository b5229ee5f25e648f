"""Wake-ups between the parts of the engine, within a replica or across replicas via Redis.

Notifications carry no data that matters: the database is the source of truth. A watcher woken
by "run X has new events" reads the events after its last sequence from the log, so a lost or
duplicated notification can delay an event by one poll interval but never lose or repeat it.
An "event" notification names the sequence it announces: the bus keeps the highest announced
sequence of each watched run (:meth:`LocalBus.latest`), so a watcher that already holds every
event up to it (the engine's in-memory copy of what it just wrote) can skip reading the log.
The same bus carries "run X was cancelled" (to the replica executing it), "work is queued"
(so idle workers claim at once instead of at their next poll) and "tenant T has new alerts"
(to every WatchAlerts stream of T, which then reads the alert log).

::

    replica A: append_event ─► publish("event", run, seq) ─► Redis PUBLISH ─► every replica's
    listener ─► local waiters of that run wake ─► they read the log after their sequence
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Final, Literal

import redis.asyncio as aioredis

from ai_orchestration._outage import OutageLog

__all__ = ["LocalBus", "RedisBus", "RunBus", "Topic", "wait_for"]

_log = logging.getLogger(__name__)

Topic = Literal["event", "cancel", "queued", "alert"]
"""What happened: new events of a run, a cancel request for a run, work in the queue, or new
alerts in a tenant's alert log (the "run id" is then the tenant)."""

CHANNEL: Final[str] = "aio:workflows:bus"
"""Redis pub/sub channel of the bus; messages are ``<topic>:<run_id>[:<sequence>]``."""


class LocalBus:
    """In-process bus: waiters per (topic, run) and subscribers to every message."""

    def __init__(self) -> None:
        self._waiters: defaultdict[tuple[Topic, str], set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[Callable[[Topic, str], None]] = []
        self._latest: dict[str, int] = {}
        self._alerts: dict[str, int] = {}

    def deliver(self, topic: Topic, run_id: str, sequence: int = 0) -> None:
        """Wake every local waiter of ``(topic, run_id)`` (and of ``(topic, "")``).

        ``sequence`` is the event an "event" message announces (0: not known, which makes
        :meth:`latest` unknown until the next message that names one)."""
        if topic == "event" and (topic, run_id) in self._waiters:
            if sequence > 0:
                self._latest[run_id] = max(sequence, self._latest.get(run_id, 0))
            else:
                self._latest.pop(run_id, None)
        if topic == "alert" and sequence > 0:
            self._alerts[run_id] = max(sequence, self._alerts.get(run_id, 0))
        for key in ((topic, run_id), (topic, "")):
            for event in self._waiters.get(key, ()):
                event.set()
        for listener in self._listeners:
            listener(topic, run_id)

    async def publish(self, topic: Topic, run_id: str = "", sequence: int = 0) -> None:
        """Tell this replica (``sequence``: the event an "event" message announces)."""
        self.deliver(topic, run_id, sequence)

    def latest(self, run_id: str) -> int | None:
        """The highest sequence announced for ``run_id`` while it had a watcher here, or
        ``None`` when none was (or the last message named none)."""
        return self._latest.get(run_id)

    def latest_alert(self, tenant_id: str) -> int:
        """The highest alert sequence announced for the tenant on this replica (0: none)."""
        return self._alerts.get(tenant_id, 0)

    def listen(self, listener: Callable[[Topic, str], None]) -> None:
        """Call ``listener`` for every message (the engine's cancel handler)."""
        self._listeners.append(listener)

    @contextlib.contextmanager
    def waiter(self, topic: Topic, run_id: str = "") -> Iterator[asyncio.Event]:
        """An event set by the next message of ``(topic, run_id)``; the caller clears it."""
        event = asyncio.Event()
        key = (topic, run_id)
        self._waiters[key].add(event)
        try:
            yield event
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]
                if topic == "event":
                    self._latest.pop(run_id, None)

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisBus(LocalBus):
    """The bus across replicas: publishes through Redis, and one listener task per replica
    delivers every message (its own included) to the local waiters."""

    def __init__(self, *, client: aioredis.Redis) -> None:
        super().__init__()
        self._client = client
        self._outage = OutageLog(_log)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Subscribe before returning, so no message published after start() is missed."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="workflow-bus")
            await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def publish(self, topic: Topic, run_id: str = "", sequence: int = 0) -> None:
        """Tell every replica; if Redis is unreachable, at least this one (others poll)."""
        try:
            await self._client.publish(CHANNEL, f"{topic}:{run_id}:{sequence}")
        except (aioredis.ConnectionError, aioredis.TimeoutError) as error:
            self._outage.failed("workflow bus: publish failed (%s); replicas will poll", error)
            self.deliver(topic, run_id, sequence)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        topic, run_id, sequence = _parse(text)
                        if topic in ("event", "cancel", "queued", "alert"):
                            self.deliver(topic, run_id, sequence)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError) as error:
                _log.warning("workflow bus: Redis listener lost (%s); reconnecting", error)
                self._ready.set()  # do not block start() forever; replicas poll meanwhile
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        """Stop listening; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


RunBus = LocalBus
"""The bus type the engine takes (a :class:`RedisBus` is one)."""


def _parse(message: str) -> tuple[str, str, int]:
    """``<topic>:<run_id>[:<sequence>]`` -> (topic, run_id, sequence or 0)."""
    topic, _, rest = message.partition(":")
    run_id, _, sequence = rest.partition(":")
    return topic, run_id, int(sequence) if sequence.isdigit() else 0


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; clear it; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    finally:
        event.clear()
    return True
