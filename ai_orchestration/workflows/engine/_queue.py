"""Where a replica's workers get runs: the queue protocol, and the database queue.

The run table is the source of truth for every run's state; a queue only decides which
replica executes which run next. :class:`DatabaseQueue`, the embedded default, claims straight
from the run table (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL). The Redis Streams
queue (:mod:`._streams`) hands run ids to replicas through a consumer group and claims each
named run in the database, so the database decides, whatever the queue delivers twice.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ai_orchestration.storage import Claimant, Claimed, RunRepository
from ai_orchestration.workflows._types import RunRecord

__all__ = ["DatabaseQueue", "RunQueue"]


class RunQueue(Protocol):
    """What the engine asks of its queue."""

    @property
    def claims_at_create(self) -> bool:
        """Whether a replica with a free slot may claim in the transaction that creates a run
        (true when the run table is the queue: the claim takes the queue's next run)."""
        ...

    async def claim(self, claimant: Claimant, count: int) -> Claimed:
        """Up to ``count`` runs for ``claimant``, each moved to RUNNING in the database, with
        the events written on the way."""
        ...

    async def queued(self, run: RunRecord) -> None:
        """``run`` became QUEUED (created, resumed, handed back): offer it to the workers."""
        ...

    async def finished(self, run_id: str, *, lost: bool = False) -> None:
        """This replica stopped executing ``run_id``: the run left RUNNING, or (``lost``)
        another replica took it over and holds its queue entry now."""
        ...

    async def renew(self, run_ids: Collection[str]) -> None:
        """This replica still executes ``run_ids`` (called at every lease heartbeat)."""
        ...

    async def depth(self) -> int:
        """Runs waiting to be handed to a replica (the queue depth an autoscaler watches)."""
        ...


class DatabaseQueue:
    """The run table as the queue (see :meth:`RunRepository.claim_many`): fair between
    tenants, by priority, then oldest first; nothing to do when a run is queued or ends."""

    claims_at_create = True

    def __init__(self, runs: RunRepository) -> None:
        self._runs = runs

    async def claim(self, claimant: Claimant, count: int) -> Claimed:
        return await self._runs.claim_many(
            claimant.worker_id,
            count,
            lease_seconds=claimant.lease_seconds,
            max_attempts=claimant.max_attempts,
        )

    async def queued(self, run: RunRecord) -> None:
        return None  # the row is the queue entry

    async def finished(self, run_id: str, *, lost: bool = False) -> None:
        return None

    async def renew(self, run_ids: Collection[str]) -> None:
        return None  # the lease is on the row, renewed by the engine's heartbeat

    async def depth(self) -> int:
        return await self._runs.count_queued()
