"""An aiosqlite connection that runs its statements on the event loop's thread.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on a worker thread and wakes
the event loop for each result. A SQLAlchemy ORM round trip makes about nine such calls, and
on a busy machine the wake-ups, not SQLite (WAL, ``synchronous=NORMAL``: no fsync per
commit), are nearly all of the time a keyed row read takes. :class:`InlineConnection` keeps
aiosqlite's interface, which SQLAlchemy's
``sqlite+aiosqlite`` dialect drives, but calls ``sqlite3`` directly in ``_execute``.

What that changes:

- A statement blocks the event loop while SQLite executes it. The statements of this service
  are indexed single-row reads and writes, and CPython's ``sqlite3`` holds the GIL while it
  binds and converts rows anyway, so the worker thread bought little concurrency for them.
  Bulk writes (``executemany``, e.g. a batch of scores) still go to the worker thread: there
  the overlap pays (``bench/bench_scoring_service.py``, BatchScoreLeads' leads per second).
- Waiting for a lock must never block the loop: the loop may be what the lock holder (a
  transaction of another task on another pooled connection) needs to finish. So connections
  run with ``busy_timeout = 0`` and :meth:`InlineConnection._execute` retries a statement
  that found the database busy after an ``asyncio.sleep`` with exponential backoff, for up to
  :data:`BUSY_TIMEOUT_SECONDS`, then raises SQLite's own "database is locked" error. Only plain
  ``SQLITE_BUSY`` is retried: a busy statement had no effect, so running it again is safe.
  ``SQLITE_BUSY_SNAPSHOT`` (a read transaction that cannot become a writer) never clears by
  waiting and is raised at once, as SQLite's busy handler would.

The worker thread remains for opening and closing the connection (and for SQLAlchemy's
isolation-level setter, which queues on it directly); the ``sqlite3`` connection is opened
with ``check_same_thread=False`` because it is used from both threads, never at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from typing import Any, Final

import aiosqlite

__all__ = ["BUSY_TIMEOUT_SECONDS", "BusyBackoff", "InlineConnection", "connect_inline"]

BUSY_TIMEOUT_SECONDS: Final[float] = 10.0
"""How long a statement waits for another writer before "database is locked" is raised."""

_FIRST_BACKOFF: Final[float] = 0.0005
_MAX_BACKOFF: Final[float] = 0.02
_RETRYABLE: Final[frozenset[int]] = frozenset(
    # Plain BUSY, and its transient variants: another connection is recovering the WAL (several
    # processes opening a new database at once), or a lock wait timed out. Not BUSY_SNAPSHOT,
    # which only a new transaction resolves.
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY, sqlite3.SQLITE_BUSY_TIMEOUT}
)
_ITER_CHUNK_SIZE: Final[int] = 64
_ON_THREAD: Final[frozenset[str]] = frozenset({"executemany", "executescript"})
"""Calls still run on the worker thread: bulk writes (a batch of scores), where SQLite's own
work is large enough that overlapping it with the loop's Python work pays for the hop."""
_ENDS_TRANSACTION: Final[frozenset[str]] = frozenset({"commit", "rollback"})
"""After a bulk write these run on the worker thread too: committing writes the transaction's
pages to the WAL, 8 us a row of a 1,000-score chunk, which the loop would otherwise wait for."""


class BusyBackoff:
    """The waits of one statement that found the database busy: exponential, up to
    :data:`BUSY_TIMEOUT_SECONDS` in all, without blocking the loop."""

    __slots__ = ("_deadline", "_delay")

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._delay = _FIRST_BACKOFF

    async def wait(self, error: sqlite3.OperationalError) -> None:
        """Sleeps before the next try; raises ``error`` when it is not plain ``SQLITE_BUSY``
        (nothing to wait for) or the time is up."""
        if getattr(error, "sqlite_errorcode", None) not in _RETRYABLE:
            raise error
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + BUSY_TIMEOUT_SECONDS
        if now >= self._deadline:
            raise error
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, _MAX_BACKOFF)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, with every call run inline (see the module docstring)."""

    _wrote_in_bulk: bool = False
    """A bulk write ran in the open transaction: its commit or rollback goes to the thread."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        backoff = BusyBackoff()
        name = getattr(fn, "__name__", "")
        bulk = name in _ON_THREAD
        if name in _ENDS_TRANSACTION:
            bulk, self._wrote_in_bulk = self._wrote_in_bulk, False
        elif bulk:
            self._wrote_in_bulk = True
        while True:
            try:
                if bulk:
                    return await self._on_thread(fn, *args, **kwargs)
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                await backoff.wait(error)

    async def _on_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Runs ``fn`` on the worker thread and waits for it to end, even when the caller is
        cancelled meanwhile: until then the ``sqlite3`` connection is in use on that thread, and
        the rollback or close that follows a cancellation would run on the loop's thread at the
        same time (``sqlite3`` does not survive that: it crashed the process).

        The end is signalled through a future of this method's own, which no task awaits
        directly: a task wrapped around aiosqlite's ``_execute`` could itself be cancelled (as
        closing a loop cancels every task), and it was, with the statement still running.
        """
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[Any] = loop.create_future()
        call = functools.partial(fn, *args, **kwargs)

        def run() -> None:  # on the worker thread
            try:
                result = call()
            except BaseException as error:  # handed to the caller as it is
                loop.call_soon_threadsafe(_settle, ended, None, error)
            else:
                loop.call_soon_threadsafe(_settle, ended, result, None)

        self._tx.put_nowait((None, run))
        try:
            return await asyncio.shield(ended)
        except asyncio.CancelledError:
            while not ended.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([ended])
            ended.exception()  # retrieved: the caller only hears of its cancellation
            raise


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def connect_inline(database: str, **kwargs: Any) -> InlineConnection:
    """An unopened :class:`InlineConnection` to ``database`` (``await`` it to open it), with
    ``sqlite3.connect``'s other arguments; the engine's ``async_creator`` and the LangGraph
    checkpointer's connection."""
    kwargs["check_same_thread"] = False
    kwargs["timeout"] = 0.0  # SQLite's busy handler would sleep on the loop: _execute waits
    connector = functools.partial(sqlite3.connect, database, **kwargs)
    return InlineConnection(connector, _ITER_CHUNK_SIZE)
