"""SQLite connection setup: WAL, foreign keys and real transactions (lock waits are the inline
connection's, see ``_sqlite_inline``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["SQLITE_BEGIN_OPTION", "configure_connection", "install_sqlite_hooks"]

SQLITE_BEGIN_OPTION = "ai_orchestration_sqlite_begin"
"""Execution option naming the ``BEGIN`` flavour (``DEFERRED`` or ``IMMEDIATE``) of a connection."""

_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


def install_sqlite_hooks(engine: Engine) -> None:
    """Register the connect and begin hooks on a SQLite engine (the async engine's sync_engine)."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    configure_connection(dbapi_connection)


def configure_connection(dbapi_connection: Any) -> None:
    """Explicit transactions, WAL, ``synchronous = NORMAL`` and foreign keys on a new
    ``sqlite3`` (or aiosqlite) connection: every connection of the service gets these."""
    # sqlite3's legacy transaction mode never emits BEGIN before DDL or SELECT, so migrations and
    # read-then-write sequences would not be atomic. Take BEGIN over (see _on_begin) instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
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
    # WAL is stored in the file, so only the first connection to a new database switches it.
    # The switch needs the file to itself; while another connection or process holds it the
    # statement is busy, and the inline connection waits and retries (without the loop blocked).
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() not in ("wal", "memory"):
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.fetchall()


def _on_begin(conn: Connection) -> None:
    mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")).upper()
    if mode not in _BEGIN_MODES:
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")
