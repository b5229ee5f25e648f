"""The :class:`Database`: one engine and session factory per process, with an explicit lifecycle."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Final, Literal, Self

import orjson
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ai_orchestration.storage import _migrate
from ai_orchestration.storage._sqlite import SQLITE_BEGIN_OPTION, install_sqlite_hooks
from ai_orchestration.storage._sqlite_inline import connect_inline
from ai_orchestration.storage._sqlite_writer import SqliteWriter
from ai_orchestration.storage._urls import normalize_database_url, sqlite_file_path
from ai_orchestration.storage._writes import EngineWrites, SqliteFileWrites, Writes

__all__ = ["Backend", "Database", "encode_json"]

Backend = Literal["sqlite", "postgresql"]


def _numpy_scalar(value: Any) -> Any:
    # orjson refuses numpy scalars (even float64, a float subclass the stdlib accepted).
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> str:
    """JSON text of a column value, as the engine writes JSON columns (orjson, numpy scalars as
    Python numbers)."""
    return orjson.dumps(value, default=_numpy_scalar).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column numeric affinity: a scalar number comes back as a number.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


_JSON_CODEC: Final[dict[str, Any]] = {
    "json_serializer": encode_json,
    "json_deserializer": _json_loads,
}
"""JSON columns through orjson: the stdlib encoder cost more than the INSERT of a score row."""


class Database:
    """Owns an :class:`AsyncEngine` and the session factory repositories use.

    Build it with :meth:`from_url` and close it when done, preferably with ``async with``::

        async with Database.from_url("sqlite:///data/service.db") as db:
            await db.migrate()
            settings = TenantSettingsRepository(database=db)

    :meth:`close` is safe to call more than once.
    """

    def __init__(self, engine: AsyncEngine, *, sqlite_file: str | None = None) -> None:
        """Wrap an engine built elsewhere; prefer :meth:`from_url`, which configures it.

        ``sqlite_file``: the engine's SQLite database file, for :attr:`sqlite_writer`.
        """
        backend = engine.dialect.name
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {backend!r}")
        self._backend: Backend = "sqlite" if backend == "sqlite" else "postgresql"
        self._engine = engine
        # Repositories hand out plain dataclasses, so nothing is read after commit: skip expiry.
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._closed = False
        self._writer = None if sqlite_file is None else SqliteWriter(sqlite_file, engine.dialect)
        self._writes: Writes = (
            SqliteFileWrites(self._writer)
            if self._writer is not None
            else EngineWrites(
                backend=self._backend,
                transaction=self.transaction,
                core_transaction=self.core_transaction,
            )
        )

    @classmethod
    def from_url(cls, url: str | URL, *, echo: bool = False) -> Database:
        """Create a database handle for ``url`` without connecting yet.

        Plain ``sqlite://`` and ``postgresql://`` URLs are switched to their async drivers (see
        :func:`normalize_database_url`). For a SQLite file, missing parent directories are
        created and every connection gets WAL, foreign keys and a busy timeout.

        Raises:
            ValueError: the URL names an unsupported backend or driver.
        """
        normalized = normalize_database_url(url)
        if normalized.get_backend_name() == "sqlite":
            path = sqlite_file_path(normalized)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            # Statements run on the loop's thread (see _sqlite_inline): a thread hop per call
            # cost a hundred times what SQLite needs for the service's row reads and writes.
            cargs, cparams = SQLiteDialect_aiosqlite().create_connect_args(normalized)
            creator = functools.partial(connect_inline, *cargs, **cparams)
            engine = create_async_engine(
                normalized, echo=echo, async_creator=creator, **_JSON_CODEC
            )
            install_sqlite_hooks(engine.sync_engine)
            return cls(engine, sqlite_file=None if path is None else str(path))
        # Replicas outlive database restarts and failovers: test connections on checkout.
        engine = create_async_engine(normalized, echo=echo, pool_pre_ping=True, **_JSON_CODEC)
        return cls(engine)

    @property
    def backend(self) -> Backend:
        """Which database this is: ``"sqlite"`` or ``"postgresql"``."""
        return self._backend

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for code that needs Core access (tests, maintenance)."""
        self._check_open()
        return self._engine

    @property
    def sqlite_writer(self) -> SqliteWriter | None:
        """The dedicated connection of a SQLite file database, for hot paths that write in one
        synchronous burst (see ``_sqlite_writer``); ``None`` on PostgreSQL and in memory."""
        self._check_open()
        return self._writer

    @property
    def writes(self) -> Writes:
        """Write transactions of the repositories' hot paths, on this database's backend (see
        ``_writes``)."""
        self._check_open()
        return self._writes

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """Session factory, for reads; write through :meth:`transaction`."""
        self._check_open()
        return self._sessionmaker

    @contextlib.asynccontextmanager
    async def transaction(self, *, immediate: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends (rolled back on an error).

        Use this rather than ``sessionmaker.begin()``: that one commits from a task of its own,
        one loop iteration after the block ends, and on SQLite the write lock stays held
        meanwhile, so every other writer of the process finds the database busy and retries.
        Here the commit runs in the caller's task before the session closes.

        ``immediate``: on SQLite, take the write lock at ``BEGIN`` (``BEGIN IMMEDIATE``) rather
        than at the first write, for read-then-write transactions (no effect on PostgreSQL).
        """
        async with self.sessionmaker() as session, session.begin():
            if immediate and self._backend == "sqlite":
                await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            yield session

    @contextlib.asynccontextmanager
    async def core_transaction(self, *, immediate: bool = False) -> AsyncIterator[AsyncConnection]:
        """:meth:`transaction` without the ORM session, for hot paths made of Core statements
        (an event append costs about half as much without the session's bookkeeping)."""
        async with self.engine.connect() as connection:
            if immediate and self._backend == "sqlite":
                await connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            async with connection.begin():
                yield connection

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    async def migrate(self) -> None:
        """Apply every Alembic migration up to head; a no-op when already there.

        Safe to call from several processes (a database lock) or tasks (a process lock) at once.
        """
        self._check_open()
        await _migrate.migrate(self._engine)

    async def close(self) -> None:
        """Dispose of the engine's connections. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self._writer.close()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        state = "closed" if self._closed else "open"
        return f"<Database {url} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the Database is closed")
