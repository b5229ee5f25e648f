"""BatchScoreLeads' work: a request cut into chunks, each scored, stored and handed over as a
serialised ``BatchScoreLeadsResponse``.

A chunk is scored in a worker process when the service has them (``scoring_batch_workers``):
parsing, features, prediction, explanations, the response message and the JSON of the storage
rows then use other cores, and this process only stores the rows and sends the bytes. In one
process the GIL caps a batch, building messages and explanations rather than predicting
(``bench/bench_scoring_service.py``). Without a worker (none configured, none started yet, or
the one holding the chunk died) the same steps run in a thread of this process.

Chunks are scored ahead of the one being stored and sent: one per worker plus one, so each
worker always has the next chunk while memory stays bounded. The request is validated while the
first chunks are scored, and nothing is stored or sent before that passed. A request's scores
are stored before they are sent; closing the stream (a cancelled call) stops after the chunks
under way. (Storing a chunk while the next is awaited was tried: no faster on two cores, where
the batch is CPU-bound.)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Final

from crm.ai.v1 import scoring_pb2
from opentelemetry.trace import NoOpTracer, Tracer
from prometheus_client import CollectorRegistry, Counter, Gauge

from ai_orchestration.batch_scoring._child import (
    ChunkJob,
    ModelKey,
    Route,
    ScoredChunk,
    score_leads,
)
from ai_orchestration.batch_scoring._pool import WorkerLostError, WorkerPool
from ai_orchestration.scoring import Deployment, ModelRegistry, ServingModel
from ai_orchestration.storage import Clock, LeadScoreRepository, utc_now

_log = logging.getLogger(__name__)

DEFAULT_CHUNK: Final[int] = 1000
"""Leads per chunk (one ``BatchScoreLeadsResponse`` each)."""


def _key(model: ServingModel) -> ModelKey:
    return (model.owner, model.version)


def route_of(deployment: Deployment) -> Route:
    """The deployment by model keys, as a job carries it."""
    challenger = deployment.challenger
    return Route(
        deployment.settings,
        _key(deployment.champion),
        _key(challenger) if challenger is not None else None,
    )


class BatchMetrics:
    """Prometheus metrics of batch scoring, in the server's registry."""

    def __init__(self, registry: CollectorRegistry, pool: WorkerPool | None) -> None:
        self.leads = Counter(
            "aio_scoring_batch_leads",
            "BatchScoreLeads leads scored, by where (worker: a worker process; server: a thread "
            "of the server, with no worker up or after one died).",
            ["where"],
            registry=registry,
        )
        self.workers = Gauge(
            "aio_scoring_batch_workers",
            "BatchScoreLeads worker processes up.",
            registry=registry,
        )
        self.workers.set_function(lambda: len(pool.pids) if pool is not None else 0)


class BatchScorer:
    """Scores BatchScoreLeads requests chunk by chunk; ``processes`` workers (0: a thread)."""

    def __init__(
        self,
        *,
        registry: ModelRegistry,
        scores: LeadScoreRepository,
        clock: Clock = utc_now,
        processes: int = 0,
        chunk: int = DEFAULT_CHUNK,
        metrics: CollectorRegistry | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: a span per chunk (``scoring.batch``); none by default."""
        self.registry = registry
        self.tracer = tracer or NoOpTracer()
        self.scores = scores
        self.clock = clock
        self.chunk = chunk
        self.pool = WorkerPool(processes) if processes else None
        self.metrics = BatchMetrics(metrics or CollectorRegistry(), self.pool)

    def start(self) -> None:
        """Launches the workers in the background; chunks use a thread until one is up."""
        if self.pool is not None:
            self.pool.start()

    async def close(self) -> None:
        """Stops the workers."""
        if self.pool is not None:
            await self.pool.close()

    async def stream(
        self,
        tenant_id: str,
        leads: Sequence[scoring_pb2.Lead],
        check: Callable[[], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The serialised responses for ``leads``, in order, each stored before it is yielded.

        ``check`` (the request's validation) runs in a thread once the first chunks are on their
        way to the workers; nothing is stored or yielded before it returns, and what it raises
        ends the stream.
        """
        deployment = await self.registry.deployment(tenant_id)
        starts = iter(range(0, len(leads), self.chunk))
        workers = self.pool.processes if self.pool is not None and self.pool.ready else 1
        ahead: deque[asyncio.Future[ScoredChunk]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is None:
                return
            chunk = leads[start : start + self.chunk]
            scoring = self._score(deployment, tenant_id, chunk, start, self.clock())
            ahead.append(asyncio.ensure_future(scoring))

        try:
            for _ in range(workers + 1):
                submit()
            if check is not None:
                # In a thread, so that the loop keeps feeding the workers meanwhile.
                await asyncio.to_thread(check)
            while ahead:
                scored = await ahead.popleft()
                submit()
                await self.scores.add_encoded(tenant_id, scored.rows)
                yield scored.response
        finally:
            for future in ahead:
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: an invalid request's chunk may have failed
                future.cancel()

    async def _score(
        self,
        deployment: Deployment,
        tenant_id: str,
        leads: Sequence[scoring_pb2.Lead],
        first_index: int,
        now: datetime,
    ) -> ScoredChunk:
        attributes: dict[str, str | int] = {
            "crm.tenant_id": tenant_id,
            "crm.batch.first_index": first_index,
        }
        with self.tracer.start_as_current_span("scoring.batch", attributes=attributes) as span:
            scored, where = await self._score_chunk(deployment, tenant_id, leads, first_index, now)
            if span.is_recording():
                span.set_attributes({"crm.batch.leads": scored.count, "crm.batch.where": where})
            self.metrics.leads.labels(where=where).inc(scored.count)
            return scored

    async def _score_chunk(
        self,
        deployment: Deployment,
        tenant_id: str,
        leads: Sequence[scoring_pb2.Lead],
        first_index: int,
        now: datetime,
    ) -> tuple[ScoredChunk, str]:
        if self.pool is not None and self.pool.ready:
            # Serialised only for a worker: a thread scores the messages themselves.
            chunk = scoring_pb2.BatchScoreLeadsRequest(leads=leads).SerializeToString()
            job = ChunkJob(tenant_id, route_of(deployment), chunk, first_index, now)
            try:
                scored = await self.pool.score(job, functools.partial(_artifact, deployment))
            except WorkerLostError as error:
                _log.warning("scoring chunk at %d in this process: %s", first_index, error)
            else:
                return scored, "worker"
        scored = await asyncio.to_thread(
            score_leads, deployment, tenant_id, leads, first_index, now
        )
        return scored, "server"


def _artifact(deployment: Deployment, key: ModelKey) -> bytes:
    """The stored form of the deployment's version ``key``, for a worker that lacks it."""
    serving = [m for m in (deployment.champion, deployment.challenger) if m is not None]
    return next(m for m in serving if _key(m) == key).artifact
