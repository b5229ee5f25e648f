"""Short SQLite write transactions on a dedicated ``sqlite3`` connection, without SQLAlchemy.

A run's event append is two statements. Through SQLAlchemy's async engine each transaction
also pays a pool checkout, greenlet hand-offs, the ``BEGIN``/``COMMIT`` events and parameter
and result processing, several times what SQLite itself needs, and a run makes about ten such
transactions (``bench/bench_workflows.py`` shows the difference; the reason this module is
kept is in ``_writes``). :class:`SqliteWriter` keeps one connection to the database
file and runs a transaction as one synchronous function, ``BEGIN IMMEDIATE`` to ``COMMIT``,
on the event loop's thread. Nothing in between awaits, so no other task can run inside the
transaction and one connection serves every task without a pool; the only wait is for the
writer lock itself (held by a transaction on a pooled connection, or by another process),
taken like every statement of the service: asyncio sleeps with backoff (``BusyBackoff``).

Values go in and come out through the column types' own bind and result processors (e.g.
``UTCDateTime`` and orjson-coded JSON, see ``_statements``), so rows written here and rows
written through the engine are the same bytes, and each side reads the other's.
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

from ai_orchestration.storage._sqlite import configure_connection
from ai_orchestration.storage._sqlite_inline import BusyBackoff
from ai_orchestration.storage._statements import CompiledStatement, Processor

__all__ = ["SqliteWriter", "WriterSession"]

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
        """``path``: the database file; ``dialect``: the engine's, whose type processors
        convert values."""
        self._path = path
        self._dialect = dialect
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None

    @property
    def dialect(self) -> Dialect:
        """The engine's dialect, whose type processors convert values."""
        return self._dialect

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

    def execute(self, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        """Runs ``statement``; the rows it changed."""
        return self._writer.execute(self._connection, statement, values).rowcount

    def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row ``statement`` returns (a ``SELECT`` or ``... RETURNING``), if any."""
        return cast(
            "Sequence[Any] | None",
            self._writer.execute(self._connection, statement, values).fetchone(),
        )

    def load(self, model: type[M], statement: ClauseElement, values: Mapping[str, Any]) -> M | None:
        """The first row of ``statement`` (a ``select(model)``), typed as a ``model``
        instance but a plain object with its column attributes (see :class:`_PlainRow`)."""
        stored = self._writer.execute(self._connection, statement, values).fetchone()
        if stored is None:
            return None
        plain = _plain(model, self._writer.dialect)
        loaded = {
            name: value if process is None or value is None else process(value)
            for name, value, process in zip(plain.columns, stored, plain.results, strict=True)
        }
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
    logic only reads and sets attributes. Each model's subclass knows its table, its columns
    in table order (a ``select(model)``'s) and their result processors."""

    __slots__ = ()
    table: Table
    columns: tuple[str, ...]
    results: tuple[Processor | None, ...]

    def __init__(self, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)


_PLAIN: dict[tuple[type[Any], Dialect], type[_PlainRow]] = {}


def _plain(model: type[Any], dialect: Dialect) -> type[_PlainRow]:
    """The plain row class of ``model`` (built once per model and dialect)."""
    known = _PLAIN.get((model, dialect))
    if known is not None:
        return known
    table = _table(model)
    attributes = {column.key for column in inspect(model).columns}
    if attributes != {column.name for column in table.columns}:
        raise TypeError(f"{model.__name__}'s attributes are not named after its columns")
    namespace = {
        "__slots__": tuple(sorted(attributes)),
        "table": table,
        "columns": tuple(column.name for column in table.columns),
        "results": tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in table.columns
        ),
    }
    plain = _PLAIN[model, dialect] = type(f"Plain{model.__name__}", (_PlainRow,), namespace)
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


@functools.lru_cache(maxsize=128)
def _compiled(statement: ClauseElement, dialect: Dialect) -> CompiledStatement:
    return CompiledStatement(statement, dialect)
