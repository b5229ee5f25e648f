"""One write interface for the repositories' hot paths, with a backend per database.

A repository states a write once, as a function of :class:`Rows` (the statements it runs and
the rows it loads, changes and adds in one transaction), and hands it to the database's
:class:`Writes`. The backend decides how the transaction runs:

- :class:`SqliteFileWrites` (a SQLite file): the dedicated ``sqlite3`` connection of
  :class:`~._sqlite_writer.SqliteWriter`, ``BEGIN IMMEDIATE`` to ``COMMIT`` in one synchronous
  call. Kept, rather than SQLAlchemy's engine for every write, by measurement:
  ``bench/bench_workflows.py`` with every write through the engine was 45% slower per step,
  took twice as long to a run's first event and 20-60% longer for 100 concurrent runs (see
  ``bench/README.md``).
- :class:`EngineWrites` (PostgreSQL, and SQLite in memory): SQLAlchemy's engine, an ORM
  session for :meth:`Writes.rows` and a Core connection for :meth:`Writes.statements` (the
  session's bookkeeping would double the cost of an event append).

Both run the same statements (SQLAlchemy constructs) with the same type processing, so rows
written by one are read back by the other. What differs between the dialects' SQL is the
backend's to say: :meth:`Writes.insert_or_skip`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable

from ai_orchestration.storage._common import dialect_insert
from ai_orchestration.storage._sqlite_writer import SqliteWriter, WriterSession

__all__ = ["EngineWrites", "Rows", "SqliteFileWrites", "Statements", "Writes"]

T = TypeVar("T")
M = TypeVar("M")


class Statements(Protocol):
    """Core statements in one write transaction."""

    def execute(self, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        """Runs ``statement``; the rows it changed."""
        ...

    def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row ``statement`` returns (a ``SELECT`` or ``... RETURNING``), if any."""
        ...


class Rows(Statements, Protocol):
    """A write transaction's statements and rows: rows are loaded as model instances, changed
    in Python and written at :meth:`flush` with the instances added."""

    def load(self, model: type[M], statement: ClauseElement, values: Mapping[str, Any]) -> M | None:
        """The first row of ``statement`` (a ``select(model)``) as a ``model`` instance."""
        ...

    def add(self, instance: object) -> None:
        """Inserts ``instance`` at the next :meth:`flush`."""
        ...

    def flush(self) -> None:
        """Writes the changes of the loaded instances and the added ones."""
        ...


class Writes(Protocol):
    """Write transactions on one database."""

    async def rows(self, work: Callable[[Rows], T]) -> T:
        """Runs ``work`` in one write transaction that loads and changes rows (the writer
        lock taken at ``BEGIN`` on SQLite; rows locked by ``FOR UPDATE`` on PostgreSQL)."""
        ...

    async def statements(self, work: Callable[[Statements], T]) -> T:
        """Runs ``work``, Core statements only, in one write transaction."""
        ...

    def insert_or_skip(
        self, model: type[Any], key: Sequence[Any], values: Mapping[str, Any]
    ) -> tuple[ClauseElement, Mapping[str, Any]]:
        """``INSERT ... ON CONFLICT (key) DO NOTHING`` of ``values`` (absent columns stored as
        SQL NULL) as this backend runs it: the statement and its parameters."""
        ...


class SqliteFileWrites:
    """:class:`Writes` on a SQLite file's dedicated :class:`SqliteWriter` connection."""

    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        self._inserts: dict[tuple[type[Any], tuple[str, ...]], ClauseElement] = {}

    async def rows(self, work: Callable[[Rows], T]) -> T:
        writer = self._writer
        return await writer.write(lambda connection: work(WriterSession(writer, connection)))

    async def statements(self, work: Callable[[Statements], T]) -> T:
        writer = self._writer
        return await writer.write(lambda connection: work(WriterSession(writer, connection)))

    def insert_or_skip(
        self, model: type[Any], key: Sequence[Any], values: Mapping[str, Any]
    ) -> tuple[ClauseElement, Mapping[str, Any]]:
        # Every column a bound parameter: the writer compiles a statement once and reuses it.
        cache_key = (model, tuple(str(column.key) for column in key))
        statement = self._inserts.get(cache_key)
        if statement is None:
            statement = dialect_insert("sqlite", model).on_conflict_do_nothing(
                index_elements=list(key)
            )
            self._inserts[cache_key] = statement
        columns = cast(Any, model).__table__.columns.keys()
        return statement, {name: values.get(name) for name in columns}


class EngineWrites:
    """:class:`Writes` through SQLAlchemy's engine (PostgreSQL, SQLite in memory)."""

    def __init__(
        self,
        *,
        backend: str,
        transaction: Callable[..., AbstractAsyncContextManager[AsyncSession]],
        core_transaction: Callable[..., AbstractAsyncContextManager[AsyncConnection]],
    ) -> None:
        """``transaction`` and ``core_transaction``: the database's (see ``Database``), called
        with ``immediate=True``."""
        self._backend = backend
        self._transaction = transaction
        self._core_transaction = core_transaction

    async def rows(self, work: Callable[[Rows], T]) -> T:
        async with self._transaction(immediate=True) as session:
            return await session.run_sync(lambda sync: work(OrmRows(sync)))

    async def statements(self, work: Callable[[Statements], T]) -> T:
        async with self._core_transaction(immediate=True) as connection:
            return await connection.run_sync(lambda sync: work(_CoreStatements(sync)))

    def insert_or_skip(
        self, model: type[Any], key: Sequence[Any], values: Mapping[str, Any]
    ) -> tuple[ClauseElement, Mapping[str, Any]]:
        # Literal values: the columns left out stay SQL NULL (a bound None would be JSON null).
        statement = (
            dialect_insert(self._backend, model)
            .values(dict(values))
            .on_conflict_do_nothing(index_elements=list(key))
        )
        return statement, {}


class OrmRows:
    """:class:`Rows` of a synchronous ORM session (``AsyncSession.run_sync``)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def execute(self, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        return _rowcount(self._session.execute(_executable(statement), values))

    def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        return self._session.execute(_executable(statement), values).first()

    def load(self, model: type[M], statement: ClauseElement, values: Mapping[str, Any]) -> M | None:
        result = self._session.execute(_executable(statement), values)
        return cast("M | None", result.scalar_one_or_none())

    def add(self, instance: object) -> None:
        self._session.add(instance)

    def flush(self) -> None:
        self._session.flush()


class _CoreStatements:
    """:class:`Statements` of a synchronous Core connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def execute(self, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        return _rowcount(self._connection.execute(_executable(statement), values))

    def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        return self._connection.execute(_executable(statement), values).first()


def _executable(statement: ClauseElement) -> Executable:
    return cast(Executable, statement)


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)
