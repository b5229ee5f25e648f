"""Short SQLite write transactions on a dedicated ``sqlite3`` connection, without SQLAlchemy.

A run's event append is two statements: through SQLAlchemy's async engine (pool checkout,
greenlet hand-offs, the ``BEGIN``/``COMMIT`` events, parameter and result processing) it
cost 0.40 ms, against 0.04-0.07 ms for the same two statements on a ``sqlite3`` connection,
and a run appends ten events. :class:`SqliteWriter` keeps one connection to the database
file and runs a transaction as one synchronous function, ``BEGIN IMMEDIATE`` to ``COMMIT``,
on the event loop's thread. Nothing in between awaits, so no other task can run inside the
transaction and one connection serves every task without a pool; the only wait is for the
writer lock itself (held by a transaction on a pooled connection, or by another process),
taken like every statement of the service: asyncio sleeps with backoff (``BusyBackoff``).

:class:`RowCodec` converts a table's rows the way SQLAlchemy would (the column types' own
bind and result processors, e.g. ``UTCDateTime`` and orjson-coded JSON), so rows written here
and rows written through the engine are the same bytes, and each side reads the other's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ai_orchestration.storage._sqlite import configure_connection
from ai_orchestration.storage._sqlite_inline import BusyBackoff

__all__ = ["RowCodec", "SqliteWriter", "WriterSession"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")

_BEGIN: Final[str] = "BEGIN IMMEDIATE"
CHECKPOINT_EVERY: Final[int] = 200
"""Commits between two WAL checkpoints, which run on a worker thread (see :meth:`write`)."""


class SqliteWriter:
    """One ``sqlite3`` connection for write transactions that never await (see the module
    docstring). Opened at the first :meth:`write`; :meth:`close` closes it."""

    def __init__(self, path: str, dialect: Dialect) -> None:
        """``path``: the database file; ``dialect``: the engine's, for :meth:`codec`."""
        self._path = path
        self._dialect = dialect
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None

    def codec(self, table: Table) -> RowCodec:
        """The row codec of ``table`` (built once per table)."""
        return _codec(table, self._dialect)

    def execute(
        self,
        connection: sqlite3.Connection,
        statement: ClauseElement,
        values: Mapping[str, Any] | None = None,
    ) -> sqlite3.Cursor:
        """Runs a SQLAlchemy Core statement (compiled once per statement object, so build the
        statement once) with ``values`` for its bound parameters, processed by their types."""
        compiled = _compiled(statement, self._dialect)
        return connection.execute(compiled.sql, compiled.parameters(values or {}))

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``work(connection)`` in a ``BEGIN IMMEDIATE`` transaction and commits it;
        rolls back and re-raises when ``work`` raises. ``work`` must not block or await."""
        connection = await self._open()
        backoff = BusyBackoff()
        while True:
            try:
                connection.execute(_BEGIN)
                break
            except sqlite3.OperationalError as error:
                await backoff.wait(error)
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and self.checkpoint_done:
            # SQLite's own automatic checkpoint (off on this connection) would copy the WAL
            # into the database inside a COMMIT, on the loop: 2-5 ms, every few dozen runs.
            self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._copy_wal))
        return result

    @property
    def checkpoint_done(self) -> bool:
        """Whether no WAL checkpoint of this writer is running."""
        return self._checkpoint is None or self._checkpoint.done()

    async def checkpoint_finished(self) -> None:
        """Returns once no WAL checkpoint of this writer is running."""
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)

    async def close(self) -> None:
        """Waits for a running checkpoint, closes the connection; a later :meth:`write`
        raises. Calling it again does nothing."""
        self._closed = True
        await self.checkpoint_finished()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _copy_wal(self) -> None:
        """A passive checkpoint on a connection of its own (on a worker thread): it copies what
        it can without waiting for readers or writers; the next one copies the rest."""
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=0.0)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            _log.warning("a WAL checkpoint of %s failed; the next one retries", self._path)
        finally:
            connection.close()

    async def _open(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        # No busy handler: a busy BEGIN is retried by write() without blocking the loop.
        connection = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=0.0
        )
        backoff = BusyBackoff()
        while True:
            try:
                configure_connection(connection)
                connection.execute("PRAGMA wal_autocheckpoint = 0")  # see write()
                break
            except sqlite3.OperationalError as error:
                try:
                    await backoff.wait(error)
                except BaseException:
                    connection.close()
                    raise
        if self._connection is None:  # another task may have opened it meanwhile
            self._connection = connection
        else:
            connection.close()
        return self._connection


class RowCodec:
    """A table's rows as SQLAlchemy would return them, by its columns' types (see the module
    docstring), from a ``SELECT`` of all its columns in table order (``select(Model)``)."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        self.columns: tuple[str, ...] = tuple(column.name for column in table.columns)
        self._results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in table.columns
        )

    def values(self, stored: Sequence[Any]) -> dict[str, Any]:
        """A stored row by column name, each value converted by its column's type."""
        return {
            name: value if process is None or value is None else process(value)
            for name, value, process in zip(self.columns, stored, self._results, strict=True)
        }


class WriterSession:
    """The part of an ORM session a repository's row logic uses, for a :class:`SqliteWriter`
    transaction: rows are loaded as plain objects with the model's attributes, changed in
    Python by the same code the session path runs, and :meth:`flush` writes the changed
    columns and the added model instances with the writer's statements."""

    def __init__(self, writer: SqliteWriter, connection: sqlite3.Connection) -> None:
        self._writer = writer
        self._connection = connection
        self._loaded: list[tuple[_PlainRow, dict[str, Any]]] = []
        self._added: list[Any] = []

    def load(self, model: type[M], statement: ClauseElement, values: Mapping[str, Any]) -> M | None:
        """The first row of ``statement`` (a ``select(model)``), typed as a ``model``
        instance but a plain object with its column attributes (see :class:`_PlainRow`)."""
        stored = self._writer.execute(self._connection, statement, values).fetchone()
        if stored is None:
            return None
        plain = _plain(model)
        loaded = self._writer.codec(plain.table).values(stored)
        instance = plain(loaded)
        self._loaded.append((instance, loaded))
        return cast(M, instance)

    def add(self, instance: object) -> None:
        """Inserts ``instance`` (a new model instance) at the next :meth:`flush`."""
        self._added.append(instance)

    def flush(self) -> None:
        """Writes the changed columns of the loaded instances, then inserts the added ones."""
        for instance, stored in self._loaded:
            table = instance.table
            changed = {
                name: value for name in stored if (value := getattr(instance, name)) != stored[name]
            }
            if changed:
                keys = {f"key_{column.name}": stored[column.name] for column in table.primary_key}
                values = {f"set_{name}": value for name, value in changed.items()}
                statement = _update_by_key(table, frozenset(changed))
                self._writer.execute(self._connection, statement, {**keys, **values})
                stored.update(changed)
        added, self._added = self._added, []
        for instance in added:
            table = _table(type(instance))
            values = {column.name: getattr(instance, column.name) for column in table.columns}
            self._writer.execute(self._connection, _insert_all(table), values)


class _PlainRow:
    """A loaded row: the model's column attributes on a plain object. An instrumented model
    instance cost more to build than the statement that read it, and the repositories' row
    logic only reads and sets attributes."""

    __slots__ = ()
    table: Table

    def __init__(self, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)


_PLAIN: dict[type[Any], type[_PlainRow]] = {}


def _plain(model: type[Any]) -> type[_PlainRow]:
    """The plain row class of ``model`` (built once per model)."""
    known = _PLAIN.get(model)
    if known is not None:
        return known
    table = _table(model)
    attributes = {column.key for column in inspect(model).columns}
    if attributes != {column.name for column in table.columns}:
        raise TypeError(f"{model.__name__}'s attributes are not named after its columns")
    namespace = {"__slots__": tuple(sorted(attributes)), "table": table}
    plain = _PLAIN[model] = type(f"Plain{model.__name__}", (_PlainRow,), namespace)
    return plain


def _table(model: type[Any]) -> Table:
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a mapped model")
    return table


@functools.lru_cache(maxsize=64)
def _insert_all(table: Table) -> ClauseElement:
    return insert(table)


@functools.lru_cache(maxsize=64)
def _update_by_key(table: Table, columns: frozenset[str]) -> ClauseElement:
    """``UPDATE table SET <columns> WHERE <primary key>``, parameters ``set_<column>`` and
    ``key_<column>``."""
    condition = [column == bindparam(f"key_{column.name}") for column in table.primary_key]
    changes = {
        name: bindparam(f"set_{name}", type_=table.columns[name].type) for name in sorted(columns)
    }
    return update(table).where(*condition).values(changes)


_REQUIRED: Final = object()
"""A bound parameter with no value of its own: the caller gives it."""


class _Compiled:
    """A statement's SQL for ``sqlite3`` and how to order and process its parameters: what
    ``construct_params`` does, once per statement instead of once per call (values bound
    in the statement, e.g. ``state = 'RUNNING'``, are taken then)."""

    __slots__ = ("_plan", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding and literal-execute parameters are not supported here")
        self.sql: str = compiled.string
        plan = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise ValueError(f"bound parameter {name!r} has a callable default")
            default = _REQUIRED if bind.required else bind.value
            plan.append((name, default, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        self._plan = tuple(plan)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The statement's parameters in order, each processed by its type."""
        given = []
        for name, default, process in self._plan:
            value = values.get(name, default)
            if value is _REQUIRED:
                raise ValueError(f"no value given for the bound parameter {name!r}")
            given.append(value if process is None or value is None else process(value))
        return tuple(given)


@functools.lru_cache(maxsize=128)
def _compiled(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    return _Compiled(statement, dialect)


@functools.lru_cache(maxsize=32)
def _codec(table: Table, dialect: Dialect) -> RowCodec:
    return RowCodec(table, dialect)
