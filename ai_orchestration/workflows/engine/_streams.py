"""The run queue on Redis Streams, for replicas that share a Redis.

Layout (every key carries the hash tag ``{runs}``, so a Redis Cluster keeps them in one slot
and the scripts below may touch them together):

- one stream per tenant and priority, ``aio:{runs}:q:<priority>:<tenant>``, with one consumer
  group, ``workers``; each replica is a consumer, named by its worker id. An entry is one
  queued run: ``{"run": <run_id>}``;
- ``aio:{runs}:active``, a sorted set of the streams that hold entries (score: priority);
- ``aio:{runs}:index``, a hash from run id to ``"<stream> <entry id>"``: at most one entry per
  run, and what a reconciliation pass checks.

The life of an entry:

1. **Queued** (:meth:`StreamQueue.queued`): ``XADD`` when the run becomes QUEUED in the
   database, unless the run already has an entry.
2. **Delivered** (:meth:`StreamQueue.claim`): one script picks the next runs the way the
   database queue would, fair between tenants first: the tenant with the fewest runs in
   progress (pending entries of its streams), then the highest priority, then the oldest entry;
   ``XREADGROUP`` gives the entry to this replica. The script looks at every stream that holds
   entries, so its Redis time grows with the number of tenants x priorities in use. The replica
   then claims that run in the database (:meth:`RunRepository.claim_named`), which decides: a
   run that no longer waits for a worker is acknowledged and dropped, so a duplicate entry
   never runs anything twice.
3. **Leased**: the entry stays pending on this replica while the run executes; every heartbeat
   resets its idle time (``XCLAIM ... JUSTID``).
4. **Re-claimed**: the entries of a dead replica stop being renewed; once idle for half a lease
   another replica takes them over (``XAUTOCLAIM``) and claims their runs as soon as the
   database lease has expired too. A run that keeps killing its replicas is dead-lettered by
   the database claim after ``max_attempts``.
5. **Acknowledged** (:meth:`StreamQueue.finished`): ``XACK`` and ``XDEL`` when the run leaves
   RUNNING here; an emptied stream is removed.

Redis is not the source of truth: a run committed as QUEUED whose entry was never added (the
replica died in between, or Redis lost its data) is found by a reconciliation pass that every
replica makes once per lease period (:meth:`RunRepository.waiting_for_worker`). While Redis is
unreachable, replicas claim runs from the run table as the database queue does, and the
entries they could not add or acknowledge are reconciled or dropped once it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ai_orchestration._outage import OutageLog
from ai_orchestration.storage import Claimant, Claimed, NamedClaim, RunRepository
from ai_orchestration.workflows._types import RunEvent, RunRecord
from ai_orchestration.workflows.engine import _stream_scripts as scripts
from ai_orchestration.workflows.engine._queue import DatabaseQueue

__all__ = ["Delivery", "StreamQueue"]

_log = logging.getLogger(__name__)

PREFIX: Final[str] = "aio:{runs}:"
ACTIVE: Final[str] = PREFIX + "active"
INDEX: Final[str] = PREFIX + "index"
GROUP: Final[str] = "workers"
PRUNE_IDLE_SECONDS: Final[float] = 3600.0
"""A consumer (a replica) holding no entry is deleted after this long without a read."""
RECONCILE_BATCH: Final[int] = 200
"""Runs a reconciliation pass looks at (highest priority and oldest first)."""


def stream_key(tenant_id: str, priority: int) -> str:
    """The stream of a tenant's runs of one priority (0-9: one digit, parsed by the scripts)."""
    return f"{PREFIX}q:{priority}:{tenant_id}"


_TENANT_AT: Final[int] = len(stream_key("", 0))
"""Where the tenant starts in a stream's key (1-based in Lua: this plus one)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stream entry given to this replica: the run it names."""

    stream: str
    entry_id: str
    run_id: str
    consumer: str
    """The replica it was given to (the worker id)."""


class StreamQueue:
    """The :class:`~ai_orchestration.workflows.engine._queue.RunQueue` on Redis Streams (see the
    module's documentation). ``client`` needs no blocking reads: the engine's bus wakes the
    claim loop, which then asks for entries without waiting."""

    claims_at_create = False  # every run goes through the streams: they decide who runs it

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        runs: RunRepository,
        lease_seconds: float,
    ) -> None:
        self._client = client
        self._runs = runs
        self._fallback = DatabaseQueue(runs)
        self._lease_seconds = lease_seconds
        self._held: dict[str, Delivery] = {}  # run id -> the entry of a run executing here
        self._put = client.register_script(scripts.PUT)
        self._ack = client.register_script(scripts.ACK)
        self._take = client.register_script(scripts.TAKE)
        self._reclaim = client.register_script(scripts.RECLAIM)
        self._depth = client.register_script(scripts.DEPTH)
        self._prune = client.register_script(scripts.PRUNE)
        self._next_reclaim = 0.0
        self._next_reconcile = 0.0
        self._outage = OutageLog(_log)

    # -- RunQueue --------------------------------------------------------------------------

    async def claim(self, claimant: Claimant, count: int) -> Claimed:
        now = time.monotonic()
        if now >= self._next_reconcile:
            self._next_reconcile = now + self._lease_seconds
            await self.reconcile()
        try:
            deliveries = await self.take(claimant.worker_id, count)
            if len(deliveries) < count and now >= self._next_reclaim:
                self._next_reclaim = now + self._lease_seconds / 4
                deliveries += await self.reclaim(claimant.worker_id, count - len(deliveries))
        except (RedisError, OSError) as error:
            return await self._claim_without_redis(claimant, count, error)
        claimed: list[RunRecord] = []
        written: list[RunEvent] = []
        for delivery in deliveries:
            named = await self._claim_one(claimant, delivery)
            written.extend(named.events)
            if named.outcome == "claimed" and named.run is not None:
                claimed.append(named.run)
        return Claimed(claimed, written)

    async def queued(self, run: RunRecord) -> None:
        try:
            await self.add(run)
        except (RedisError, OSError) as error:  # reconciliation adds it when Redis is back
            self._unreachable(error)

    async def finished(self, run_id: str, *, lost: bool = False) -> None:
        delivery = self._held.pop(run_id, None)
        if delivery is None or lost:  # a lost run's entry is the new holder's to acknowledge
            return
        try:
            await self.acknowledge(delivery)
        except (RedisError, OSError) as error:  # a leftover entry is dropped when delivered
            self._unreachable(error)

    async def renew(self, run_ids: Collection[str]) -> None:
        held = [self._held[run_id] for run_id in run_ids if run_id in self._held]
        if not held:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for delivery in held:
                    pipeline.xclaim(
                        delivery.stream,
                        GROUP,
                        delivery.consumer,
                        0,
                        [delivery.entry_id],
                        justid=True,
                    )
                await pipeline.execute()
        except (RedisError, OSError) as error:  # the database lease still holds the runs
            self._unreachable(error)

    async def depth(self) -> int:
        return int(await self._depth(keys=[ACTIVE], args=[GROUP]))

    # -- the stream operations ---------------------------------------------------------------

    async def add(self, run: RunRecord) -> bool:
        """Add the run's entry; False when it has one already."""
        stream = stream_key(run.tenant_id, run.priority)
        added = await self._put(
            keys=[ACTIVE, INDEX, stream], args=[GROUP, run.run_id, run.priority]
        )
        return added is not None

    async def take(self, consumer: str, count: int) -> list[Delivery]:
        """Up to ``count`` new entries for ``consumer``, picked fairly (see the module)."""
        flat = await self._take(keys=[ACTIVE], args=[GROUP, consumer, count, _TENANT_AT])
        return self._deliveries(consumer, flat)

    async def reclaim(self, consumer: str, count: int) -> list[Delivery]:
        """Up to ``count`` entries that another consumer left idle for half a lease."""
        idle_ms = max(1, int(self._lease_seconds * 500))
        flat = await self._reclaim(keys=[ACTIVE], args=[GROUP, consumer, idle_ms, count])
        return self._deliveries(consumer, flat)

    async def acknowledge(self, delivery: Delivery) -> None:
        """Remove the entry: its run needs no worker from the queue any more."""
        await self._ack(
            keys=[ACTIVE, INDEX, delivery.stream],
            args=[GROUP, delivery.entry_id, delivery.run_id],
        )

    async def reconcile(self) -> int:
        """Queue the runs the database says wait for a worker but that have no entry, and
        delete the consumers of replicas long gone (see :meth:`prune`); returns how many runs
        were added."""
        try:
            waiting = await self._runs.waiting_for_worker(RECONCILE_BATCH)
            added = 0
            for run in waiting:
                added += await self.add(run)
            await self.prune()
        except Exception:
            _log.exception("reconciling the run queue with the database failed; retrying")
            return 0
        if added:
            _log.warning("queued %d runs that waited without a queue entry", added)
        return added

    async def prune(self, idle_seconds: float = PRUNE_IDLE_SECONDS) -> int:
        """Delete the consumers that hold no entry and were idle for ``idle_seconds``; returns
        how many."""
        idle_ms = max(0, int(idle_seconds * 1000))
        return int(await self._prune(keys=[ACTIVE], args=[GROUP, idle_ms]))

    # -- internals ---------------------------------------------------------------------------

    async def _claim_without_redis(
        self, claimant: Claimant, count: int, error: Exception
    ) -> Claimed:
        """While Redis is unreachable, runs are claimed from the run table, as without Redis:
        the database decides either way, and reconciliation queues what is left when Redis is
        back (a run claimed here has no entry: if this replica dies, reconciliation finds it
        once its lease expired)."""
        self._unreachable(error)
        return await self._fallback.claim(claimant, count)

    async def _claim_one(self, claimant: Claimant, delivery: Delivery) -> NamedClaim:
        try:
            named = await self._runs.claim_named(delivery.run_id, claimant)
        except Exception:
            # The entry stays pending here, unrenewed: it is re-claimed after half a lease.
            _log.exception("claiming run %s from the queue failed", delivery.run_id)
            return NamedClaim("busy", None, [])
        if named.outcome == "claimed" and named.run is not None:
            self._held[named.run.run_id] = delivery
        elif named.outcome == "ended":
            await self.acknowledge(delivery)
        # "busy": another replica's lease is live. The entry stays pending, unrenewed, and is
        # looked at again once idle for half a lease (it ends with the run, or takes it over).
        return named

    def _unreachable(self, error: Exception) -> None:
        """Logs an outage of Redis, once a minute at most."""
        self._outage.failed(
            "Redis unreachable (%s): runs are claimed from the database until it is back", error
        )

    @staticmethod
    def _deliveries(consumer: str, flat: list[bytes]) -> list[Delivery]:
        texts = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
        deliveries = []
        for index in range(0, len(texts) - 2, 3):
            stream, entry_id, run_id = texts[index : index + 3]
            deliveries.append(Delivery(stream, entry_id, run_id, consumer))
        return deliveries
