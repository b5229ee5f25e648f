"""Write-behind of the ``llm_calls`` rows: callers queue them, one task writes them in batches.

Storing every call with its own INSERT and COMMIT costs milliseconds on SQLite, on the caller's
path, which alone exceeds the gateway's overhead goal (issue #4: at most 1 ms at the median).
:meth:`UsageWriter.put` only appends to an in-memory queue; one background task writes the queue,
one INSERT statement and one transaction per batch (:meth:`UsageRepository.add_calls`), as soon
as ``batch_rows`` are waiting or ``flush_interval_seconds`` after it noticed the first of them.

What it trades: a row reaches the database up to one interval after its call returned, and a
process killed with SIGKILL loses the rows of its last interval (:meth:`UsageWriter.close` writes
them on a clean shutdown). Budgets do not wait for it: the accountant updates the month-to-date
counters on the call's path.

Nothing is dropped while the process lives. A write that fails because storage is unavailable is
logged and retried with exponential backoff, in order; meanwhile the queue fills, and at
``max_queued_rows`` :meth:`UsageWriter.put` waits for room (back-pressure on the callers instead
of unbounded memory or lost rows). A batch the database refuses for its content (a constraint or
a value out of range) is retried row by row so one bad row cannot block the rest; a row refused
on its own, while rows beside it were stored, is logged at ERROR with everything it held and
dropped. (When no row of the batch goes in, storage itself is suspect and every row is kept.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import DataError, IntegrityError

from ai_orchestration.storage import NewLlmCall, UsageRepository

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CLOSE_TIMEOUT_SECONDS",
    "DEFAULT_FLUSH_INTERVAL_SECONDS",
    "DEFAULT_MAX_QUEUED_ROWS",
    "DEFAULT_MAX_RETRY_DELAY_SECONDS",
    "MAX_BATCH_ROWS",
    "UsageWriter",
    "WriteBehindPolicy",
]

_log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS: Final[int] = 100
"""Rows written at once: 100 rows in one transaction cost about what two single-row commits do."""
MAX_BATCH_ROWS: Final[int] = 1000
"""Largest batch :meth:`UsageRepository.add_calls` accepts in one statement."""
DEFAULT_FLUSH_INTERVAL_SECONDS: Final[float] = 0.05
"""Longest a row waits for its batch to fill: what ``GetUsage`` lags behind, and what a SIGKILL
can lose."""
DEFAULT_MAX_QUEUED_ROWS: Final[int] = 10_000
"""Rows accepted but not yet stored before :meth:`UsageWriter.put` waits (a few MB)."""
DEFAULT_MAX_RETRY_DELAY_SECONDS: Final[float] = 5.0
"""Longest pause between two attempts to write while storage is failing."""
DEFAULT_CLOSE_TIMEOUT_SECONDS: Final[float] = 10.0
"""How long :meth:`UsageWriter.close` keeps trying to store the queue before it gives up."""

Row = tuple[str, NewLlmCall]
"""A row to store: the tenant and its call."""
_Entry = tuple[int, str, NewLlmCall]
"""A queued row with its sequence number (1, 2, ... in the order rows were accepted)."""
# The rows' content was refused (by the database, or by its driver before sending, as
# sqlite3's OverflowError for an integer beyond 64 bits): retrying the same batch cannot help.
_CONTENT_ERRORS: Final = (DataError, IntegrityError, ValueError, TypeError, OverflowError)


@dataclass(frozen=True, slots=True)
class WriteBehindPolicy:
    """When :class:`UsageWriter` writes, how much it holds, and how long it retries."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    """Write as soon as this many rows wait (1 to :data:`MAX_BATCH_ROWS`)."""
    flush_interval_seconds: float = DEFAULT_FLUSH_INTERVAL_SECONDS
    """Write this long after the first waiting row was noticed, however few wait."""
    max_queued_rows: int = DEFAULT_MAX_QUEUED_ROWS
    """Rows accepted and not yet stored at which ``put`` waits (at least ``batch_rows``)."""
    max_retry_delay_seconds: float = DEFAULT_MAX_RETRY_DELAY_SECONDS
    """Cap of the backoff between failed writes (it starts at ``flush_interval_seconds``)."""
    close_timeout_seconds: float = DEFAULT_CLOSE_TIMEOUT_SECONDS
    """How long ``close`` retries before it logs the rows it could not store and stops."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_rows <= MAX_BATCH_ROWS:
            raise ValueError(f"batch_rows must be 1..{MAX_BATCH_ROWS}, got {self.batch_rows}")
        if self.max_queued_rows < self.batch_rows:
            raise ValueError("max_queued_rows must be at least batch_rows")
        times = (
            self.flush_interval_seconds,
            self.max_retry_delay_seconds,
            self.close_timeout_seconds,
        )
        if min(times) <= 0:
            raise ValueError("the write-behind intervals and timeouts must be positive")


class UsageWriter:
    """Queues ``llm_calls`` rows and stores them in batches from one task; see the module doc.

    Rows are stored in the order they were accepted, except that a row whose write failed
    while others of its batch went in is retried after them. The task starts with the first
    row (it needs a running event loop) and ends in :meth:`close`, which is safe to call twice.
    """

    def __init__(
        self, *, repository: UsageRepository, policy: WriteBehindPolicy | None = None
    ) -> None:
        self._repository = repository
        self._policy = policy or WriteBehindPolicy()
        self._pending: deque[_Entry] = deque()
        self._in_flight: list[_Entry] = []
        self._accepted = 0
        self._resolved = 0
        self._flush_to = 0
        self._failed_writes = 0
        self._rejected = 0
        self._progress = asyncio.Condition()
        """Notified whenever rows were stored (or the writer stopped)."""
        self._signal = asyncio.Event()
        """Wakes the task: rows arrived, a batch is full, a flush or close was asked for."""
        self._backing_off = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def policy(self) -> WriteBehindPolicy:
        """The policy in force."""
        return self._policy

    @property
    def waiting(self) -> int:
        """Rows accepted and not yet stored (queued or being written)."""
        return self._accepted - self._resolved

    @property
    def failed_writes(self) -> int:
        """Write attempts that failed since this writer started (each was retried)."""
        return self._failed_writes

    @property
    def rejected_rows(self) -> int:
        """Rows the database refused for their content, logged at ERROR and not stored."""
        return self._rejected

    async def put(self, tenant_id: str, call: NewLlmCall) -> None:
        """Queue one row; waits while ``max_queued_rows`` are not yet stored.

        Raises:
            RuntimeError: the writer is closing or closed.
        """
        if not self._closing and self.waiting >= self._policy.max_queued_rows:
            async with self._progress:
                await self._progress.wait_for(
                    lambda: self._closing or self.waiting < self._policy.max_queued_rows
                )
        if self._closing:
            raise RuntimeError("the LLM usage writer is closed: the call was not recorded")
        self._accepted += 1
        self._pending.append((self._accepted, tenant_id, call))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="llm-usage-writer"
            )
        queued = len(self._pending)
        if not self._backing_off and (queued == 1 or queued >= self._policy.batch_rows):
            self._signal.set()

    async def flush(self) -> None:
        """Store every row accepted before this call now; returns once they are stored.

        While storage fails this keeps waiting (the writer retries); bound it with
        ``asyncio.timeout`` if needed. After :meth:`close` it returns at once.
        """
        target = self._accepted
        task = self._task
        if task is None or self._oldest_unstored() > target:
            return
        self._flush_to = max(self._flush_to, target)
        self._signal.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._oldest_unstored() > target or task.done())

    async def close(self) -> None:
        """Store what is queued (retrying up to ``close_timeout_seconds``), then stop.

        Rows still not stored after that are logged at ERROR, with their totals, as lost.
        Safe to call twice.
        """
        if self._closing:
            return
        self._closing = True
        task = self._task
        if task is None:
            return
        self._signal.set()
        try:
            async with asyncio.timeout(self._policy.close_timeout_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            lost = [*self._in_flight, *self._pending]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            _log.error(
                "LLM usage: %d row(s) could not be stored within %g s of closing and are lost "
                "(%d tokens, $%.6f, tenants %s)",
                len(lost),
                self._policy.close_timeout_seconds,
                sum(c.prompt_tokens + c.completion_tokens for _, _, c in lost),
                sum(c.cost_usd for _, _, c in lost),
                ", ".join(sorted({tenant for _, tenant, _ in lost})),
            )
        finally:
            async with self._progress:
                self._progress.notify_all()

    # --- the task ----------------------------------------------------------------------------

    def _oldest_unstored(self) -> int:
        """Sequence number of the oldest row not yet stored (both queues stay sorted)."""
        if self._in_flight:
            return self._in_flight[0][0]
        if self._pending:
            return self._pending[0][0]
        return self._accepted + 1

    async def _run(self) -> None:
        failures = 0
        while self._pending or not self._closing:
            if not self._pending:
                await self._wait(None)
                continue
            await self._gather()
            size = min(len(self._pending), self._policy.batch_rows)
            self._in_flight = [self._pending.popleft() for _ in range(size)]
            retry = await self._write(self._in_flight)
            done = len(self._in_flight) - len(retry)
            # Back in front, still sorted: what failed precedes everything queued after it.
            self._pending.extendleft(reversed(retry))
            self._in_flight = []
            if done:
                self._resolved += done
                async with self._progress:
                    self._progress.notify_all()
            if retry:
                failures += 1
                await self._back_off(failures)
            else:
                failures = 0

    def _urgent(self) -> bool:
        return (
            self._closing
            or len(self._pending) >= self._policy.batch_rows
            or self._flush_to >= self._oldest_unstored()
        )

    async def _gather(self) -> None:
        """Wait until the batch is full, a flush or close asks, or the interval has passed."""
        deadline = asyncio.get_running_loop().time() + self._policy.flush_interval_seconds
        while not self._urgent() and asyncio.get_running_loop().time() < deadline:
            await self._wait(deadline)

    async def _wait(self, deadline: float | None) -> None:
        self._signal.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._signal.wait()

    async def _back_off(self, failures: int) -> None:
        """Pause before the next attempt; only a flush or close ends it early."""
        policy = self._policy
        exponent = min(failures - 1, 30)
        delay = min(policy.max_retry_delay_seconds, policy.flush_interval_seconds * 2**exponent)
        self._backing_off = True
        try:
            await self._wait(asyncio.get_running_loop().time() + delay)
        finally:
            self._backing_off = False

    async def _write(self, batch: list[_Entry]) -> list[_Entry]:
        """Store ``batch``; returns the entries to retry (all of them when storage failed)."""
        try:
            await self._repository.add_calls([(tenant, call) for _, tenant, call in batch])
        # Whatever failed, the rows are kept and retried, never lost: a lost connection, a
        # locked or missing table, a closed pool, or (below) values the database refused.
        except Exception as exc:
            if _refused_for_content(exc):
                _log.warning(
                    "LLM usage: a batch of %d row(s) was refused for its content; storing the "
                    "rows one by one",
                    len(batch),
                    exc_info=True,
                )
                return await self._write_one_by_one(batch)
            self._failed_writes += 1
            _log.warning(
                "LLM usage: storing %d row(s) failed (%d failed attempt(s) so far); retrying",
                len(batch),
                self._failed_writes,
                exc_info=True,
            )
            return batch
        return []

    async def _write_one_by_one(self, batch: list[_Entry]) -> list[_Entry]:
        retry: list[_Entry] = []
        refused: list[tuple[_Entry, Exception]] = []
        stored = 0
        for entry in batch:
            try:
                await self._repository.add_calls([entry[1:]])
            except Exception as exc:  # classified below, kept unless refused for content
                if _refused_for_content(exc):
                    refused.append((entry, exc))
                else:
                    retry.append(entry)
            else:
                stored += 1
        if not stored:
            # Not one row went in: blame storage, not the rows, and keep them all.
            self._failed_writes += 1
            return batch
        for (_, tenant, call), error in refused:
            self._rejected += 1
            _log.error(
                "LLM usage: the database refused this row, it is not stored: tenant %r, %r",
                tenant,
                call,
                exc_info=error,
            )
        if retry:
            self._failed_writes += 1
        return retry


def _refused_for_content(exc: BaseException) -> bool:
    """Whether the database or its driver refused the rows' values (not a storage failure).

    Drivers' own errors sit behind SQLAlchemy's (``orig``) or are chained (``__cause__``):
    asyncpg reports an out-of-range argument as a ``ValueError`` that SQLAlchemy wraps in a
    plain ``DBAPIError``, so the chain is searched.
    """
    current: BaseException | None = exc
    for _ in range(8):  # chains are short; the bound guards against a cycle
        if current is None:
            return False
        if isinstance(current, _CONTENT_ERRORS):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False
