"""SQLite connection setup: WAL, foreign keys, busy timeout and real transactions."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

from ai_orchestration.storage._sqlite_inline import BUSY_TIMEOUT_SECONDS

__all__ = ["SQLITE_BEGIN_OPTION", "SQLITE_BUSY_TIMEOUT_MS", "install_sqlite_hooks"]

SQLITE_BEGIN_OPTION = "ai_orchestration_sqlite_begin"
"""Execution option naming the ``BEGIN`` flavour (``DEFERRED`` or ``IMMEDIATE``) of a connection."""

SQLITE_BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_SECONDS * 1000)
"""How long a statement waits for another writer before failing with "database is locked".

SQLite's own busy handler is off (``busy_timeout = 0``): it would sleep on the event loop's
thread. :class:`~._sqlite_inline.InlineConnection` waits with ``asyncio.sleep`` instead."""

_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_WAL_RETRY_SECONDS = 0.05


def install_sqlite_hooks(engine: Engine) -> None:
    """Register the connect and begin hooks on a SQLite engine (the async engine's sync_engine)."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # sqlite3's legacy transaction mode never emits BEGIN before DDL or SELECT, so migrations and
    # read-then-write sequences would not be atomic. Take BEGIN over (see _on_begin) instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # No busy handler: it would block the event loop (the connection retries, see above).
        cursor.execute("PRAGMA busy_timeout = 0")
        # WAL lets readers proceed while one writer commits, which a multi-task server needs.
        _ensure_wal(cursor)
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives a crash
        # of the process (the case that matters for a server) and only a power loss can drop the
        # last commits. FULL costs an fsync per commit -- several ms for every stored score.
        cursor.execute("PRAGMA synchronous = NORMAL")
        # SQLite ignores declared foreign keys unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _ensure_wal(cursor: Any) -> None:
    # WAL is stored in the file, so only the first connection to a new database switches it. That
    # switch needs an exclusive lock, and SQLite skips the busy handler when waiting could
    # deadlock, so processes racing to open a new file get "database is locked" at once: retry.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchall()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            # The connect hook runs in SQLAlchemy's greenlet, so it can wait without blocking.
            await_(asyncio.sleep(_WAL_RETRY_SECONDS))


def _on_begin(conn: Connection) -> None:
    mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")).upper()
    if mode not in _BEGIN_MODES:
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")
