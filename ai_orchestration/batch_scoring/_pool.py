"""Scoring worker processes, driven from the event loop.

Each worker is a child process (:mod:`._worker_main`) doing one job at a time over its pipes. The
pool hands a job to an idle worker, with the artifacts of the models that worker has not loaded,
and reads the outcome on the event loop: no thread of the parent waits on a pipe. A worker that
dies (killed, out of memory) is replaced in the background; the job it held fails with
:class:`WorkerLostError` and the caller scores that chunk itself, so a lost worker loses no
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from ai_orchestration.batch_scoring._child import (
    ERROR,
    HEADER,
    OK,
    READY,
    ChunkJob,
    ModelKey,
    ScoredChunk,
)

_log = logging.getLogger(__name__)

START_TIMEOUT: Final[float] = 120.0
"""Longest wait for a new worker's ready frame (imports take about 2 s on an idle machine)."""
STOP_TIMEOUT: Final[float] = 5.0
"""Longest wait for a worker to exit once its input is closed, before it is killed."""
_COMMAND: Final[tuple[str, ...]] = (
    sys.executable,
    "-m",
    "ai_orchestration.batch_scoring._worker_main",
)

Artifacts = Callable[[ModelKey], bytes]
"""Gives a model version's artifact (:meth:`TrainedModel.to_bytes`)."""


class WorkerLostError(RuntimeError):
    """No worker could do the job (it died, or none is running): score it another way."""


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    loaded: frozenset[ModelKey] = field(default=frozenset())
    """Model versions the worker holds, as its last frame said."""

    async def read(self) -> tuple[str, object]:
        assert self.process.stdout is not None
        head = await self.process.stdout.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        kind, value, loaded = pickle.loads(await self.process.stdout.readexactly(size))
        self.loaded = frozenset(loaded)
        return kind, value

    async def call(self, job: ChunkJob) -> tuple[str, object]:
        assert self.process.stdin is not None
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(HEADER.pack(len(data)))
        self.process.stdin.write(data)
        await self.process.stdin.drain()
        return await self.read()

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()  # end of input: the worker's loop ends
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


class WorkerPool:
    """``processes`` scoring workers; :meth:`start` launches them without waiting."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        self.processes = processes
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        self._live: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def ready(self) -> bool:
        """Whether at least one worker is up."""
        return bool(self._live)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [worker.process.pid for worker in self._live]

    def start(self) -> None:
        """Launches the missing workers in the background."""
        missing = self.processes - len(self._live) - len(self._starting)
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._launch())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def wait_ready(self) -> None:
        """Waits until every worker is up (or the launches that were under way have ended).

        Raises:
            WorkerLostError: a worker could not be started.
        """
        while self._starting:
            await asyncio.gather(*self._starting)
        if len(self._live) < self.processes:
            raise WorkerLostError(
                f"{len(self._live)} of {self.processes} scoring workers are running; see the log"
            )

    async def _launch(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *_COMMAND, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        worker = _Worker(process)
        try:
            kind, _ = await asyncio.wait_for(worker.read(), START_TIMEOUT)
            if kind != READY:
                raise RuntimeError(f"expected a ready frame, got {kind!r}")
        except (Exception, asyncio.CancelledError) as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if not isinstance(error, asyncio.CancelledError):
                _log.error("scoring worker did not start: %r", error)
            if not self._live:
                self._idle.put_nowait(None)  # wakes whoever waits for a worker: there is none
            return
        if self._closed:
            await worker.stop()
            return
        self._live.add(worker)
        self._idle.put_nowait(worker)
        _log.info("scoring worker %d ready", process.pid)

    async def score(self, job: ChunkJob, artifacts: Artifacts) -> ScoredChunk:
        """Scores ``job`` in the first idle worker.

        Raises:
            WorkerLostError: no worker is running, or the worker died on the job.
            Exception: what the worker raised for the job.
        """
        while True:
            if not self._live:
                raise WorkerLostError("no scoring worker is running")
            worker = await self._idle.get()
            if worker is not None:
                break
            if not self._live:
                self._idle.put_nowait(None)  # for the next waiter too
                raise WorkerLostError("no scoring worker is running")
            # else a stale wake-up from a failed launch: a worker has started since
        try:
            needed = [key for key in job.route.versions() if key not in worker.loaded]
            if needed:
                job = replace(job, models={key: artifacts(key) for key in needed})
        except BaseException:
            self._idle.put_nowait(worker)
            raise
        # Shielded: a caller that goes away must not leave an outcome unread in the pipe.
        return await asyncio.shield(self._run(worker, job))

    async def _run(self, worker: _Worker, job: ChunkJob) -> ScoredChunk:
        try:
            kind, value = await worker.call(job)
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError) as error:
            self._lose(worker)
            raise WorkerLostError(f"scoring worker {worker.process.pid} died: {error!r}") from error
        self._idle.put_nowait(worker)
        if kind == OK and isinstance(value, ScoredChunk):
            return value
        if kind == ERROR and isinstance(value, Exception):
            raise value
        raise RuntimeError(f"unexpected frame from a scoring worker: {kind!r}")

    def _lose(self, worker: _Worker) -> None:
        self._live.discard(worker)
        with contextlib.suppress(ProcessLookupError):
            worker.process.kill()
        _log.warning("scoring worker %d died; starting another", worker.process.pid)
        if not self._closed:
            self.start()

    async def close(self) -> None:
        """Stops the workers (each finishes the job it is on)."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        workers, self._live = list(self._live), set()
        await asyncio.gather(*(worker.stop() for worker in workers))
