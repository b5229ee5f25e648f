"""Many rows into one table with one ``executemany``, bind values converted column by column.

``connection.execute(insert(table), list_of_dicts)`` converts every value of every row through
SQLAlchemy's per-row parameter machinery; for a 10,000-score chunk that cost more than the
INSERT itself in SQLite. Here the statement is compiled once per dialect (a
:class:`CompiledStatement`), each column's bind processor (the same one SQLAlchemy would use:
JSON serialisation, UTC timestamps) is applied to the column's values, once per distinct value
for columns whose values repeat across a batch (timestamps, versions), and the rows go to the
driver's ``executemany`` as positional tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_orchestration.storage._statements import CompiledStatement

__all__ = ["BulkInsert"]


class BulkInsert:
    """``INSERT INTO table (columns...)`` for many rows given as tuples in ``columns`` order.

    ``repeated``: columns whose values are few per batch; their conversion is memoised.
    ``encoded``: columns whose values come already converted (JSON text made with
    :func:`encode_json`, the engine's own serialiser), passed to the driver as they are.
    """

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        repeated: Sequence[str] = (),
        encoded: Sequence[str] = (),
    ) -> None:
        unknown = set(columns).union(repeated, encoded) - set(table.columns.keys())
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
        self.table = table
        self.columns = tuple(columns)
        self._repeated = frozenset(self.columns.index(name) for name in repeated)
        self._encoded = frozenset(self.columns.index(name) for name in encoded)
        self._compiled: dict[str, CompiledStatement] = {}

    def _compile(self, dialect: Dialect) -> CompiledStatement:
        compiled = self._compiled.get(dialect.name)
        if compiled is not None:
            return compiled
        compiled = CompiledStatement(insert(self.table), dialect, column_keys=self.columns)
        if compiled.names != self.columns:
            raise ValueError(
                f"{dialect.name}: expected positional parameters in the order {self.columns}, "
                f"got {compiled.names}"
            )
        self._compiled[dialect.name] = compiled
        return compiled

    def _convert(
        self, compiled: CompiledStatement, rows: Sequence[Sequence[Any]]
    ) -> list[tuple[Any, ...]]:
        columns: list[Sequence[Any]] = []
        for index, column in enumerate(zip(*rows, strict=True)):
            process = compiled.processors[index]
            if process is None or index in self._encoded:
                columns.append(column)
            elif index in self._repeated:
                memo: dict[Any, Any] = {}
                converted = []
                for value in column:
                    if (done := memo.get(value, memo)) is memo:
                        done = memo[value] = process(value)
                    converted.append(done)
                columns.append(converted)
            else:
                columns.append([process(value) for value in column])
        return list(zip(*columns, strict=True))

    async def execute(self, connection: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        """Inserts ``rows`` (tuples in ``columns`` order) in the connection's transaction."""
        if not rows:
            return
        if any(len(row) != len(self.columns) for row in rows):
            raise ValueError(f"each row needs {len(self.columns)} values: {self.columns}")
        compiled = self._compile(connection.dialect)
        converted = self._convert(compiled, rows)
        # One row as a plain execute: on SQLite that runs on the event loop's thread, where an
        # executemany goes to the driver's worker thread (worth it only for many rows).
        await connection.exec_driver_sql(
            compiled.sql, converted[0] if len(converted) == 1 else converted
        )
