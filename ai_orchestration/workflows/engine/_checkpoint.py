"""LangGraph checkpointers on the service's database: SQLite (embedded) or PostgreSQL.

:func:`open_checkpointer` takes the service's database URL (``sqlite+aiosqlite:///data/x.db``,
``postgresql+asyncpg://...`` or their plain forms) and yields a ready checkpointer:

- SQLite: ``AsyncSqliteSaver`` on a separate file next to the main database
  (``<db stem>-checkpoints.db``), through an inline aiosqlite connection (statements on the
  loop's thread, busy waits with ``asyncio.sleep``). Separate, because the saver holds its own
  connection and writes after every graph step; sharing the main file would make those writes
  queue behind (and block) the service's own transactions. WAL with ``synchronous=NORMAL``:
  a committed checkpoint survives a crash of the process, which is what resuming needs.
- PostgreSQL: ``AsyncPostgresSaver`` on a psycopg connection pool (many runs checkpoint at
  once; one connection would serialise them), in the same database as the service's tables
  (the saver's tables are named ``checkpoint*``).

``setup()`` (the savers' own idempotent migrations) runs once per open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import URL

from ai_orchestration.storage import connect_inline, normalize_database_url, sqlite_file_path

__all__ = [
    "CHECKPOINT_SUFFIX",
    "checkpoint_file",
    "open_checkpointer",
    "postgres_conninfo",
]

CHECKPOINT_SUFFIX: Final[str] = "-checkpoints.db"
"""Appended to the main SQLite database's stem to name the checkpoint file."""
_DEFAULT_POOL_SIZE: Final[int] = 10


def checkpoint_file(url: URL) -> str:
    """The checkpoint database of a SQLite URL: ``data/service.db`` ->
    ``data/service-checkpoints.db``; ``:memory:`` for an in-memory main database."""
    path = sqlite_file_path(url)
    if path is None:
        return ":memory:"
    return str(path.with_name(path.stem + CHECKPOINT_SUFFIX))


def postgres_conninfo(url: URL) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (driver dropped; query
    parameters such as ``host=/socket/dir`` kept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _sqlite(url: URL) -> AsyncIterator[BaseCheckpointSaver[str]]:
    target = checkpoint_file(url)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    # Inline (see storage._sqlite_inline): a checkpoint is written after every graph step, and
    # a thread hop per aiosqlite call cost more than SQLite's own work.
    connection = await connect_inline(target)
    try:
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.execute("PRAGMA synchronous = NORMAL")
        saver = AsyncSqliteSaver(connection)
        await saver.setup()
        yield saver
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _postgres(url: URL, pool_size: int) -> AsyncIterator[BaseCheckpointSaver[str]]:
    # The saver's own from_conn_string opens one connection with these settings; a pool
    # needs them per connection: autocommit (the saver manages its transactions), no
    # server-side prepared statements (poolers), dict rows (the saver reads columns by name).
    pool: AsyncConnectionPool[AsyncConnection[dict[str, Any]]] = AsyncConnectionPool(
        postgres_conninfo(url),
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def open_checkpointer(
    database_url: str | URL, *, pool_size: int = _DEFAULT_POOL_SIZE
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """A set-up checkpointer for the service's database, closed when the block ends.

    ``pool_size`` bounds the PostgreSQL connections (unused for SQLite).

    Raises:
        ValueError: the URL is not a supported SQLite or PostgreSQL URL.
    """
    url = normalize_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        async with _sqlite(url) as saver:
            yield saver
    else:
        async with _postgres(url, pool_size) as saver:
            yield saver
