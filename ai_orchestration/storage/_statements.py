"""SQLAlchemy Core statements compiled once, for code that hands them to the driver itself.

SQLAlchemy's execution path processes every parameter of every call through its per-call
machinery (``construct_params``, the dialect's processors, result setup). The hot paths that
bypass it (:class:`~ai_orchestration.storage._bulk.BulkInsert`'s ``executemany`` and the SQLite
writer's statements) still take the SQL and the conversions from SQLAlchemy:
:class:`CompiledStatement` is the statement's positional SQL, each parameter's bind processor
(the column type's own: JSON, UTC timestamps) and the values bound in the statement itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["CompiledStatement", "Processor"]

Processor = Callable[[Any], Any]

_REQUIRED: Final = object()
"""A bound parameter with no value of its own: the caller gives it."""


class CompiledStatement:
    """``statement`` compiled for ``dialect`` with positional parameters: what
    ``construct_params`` works out per call, worked out once (values bound in the statement,
    e.g. ``state = 'RUNNING'``, are taken then). ``column_keys``: for an ``INSERT`` without
    values, the columns it names."""

    __slots__ = ("_defaults", "names", "processors", "sql")

    def __init__(
        self,
        statement: ClauseElement,
        dialect: Dialect,
        *,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        keys = None if column_keys is None else list(column_keys)
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=keys))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding and literal-execute parameters are not supported here")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors: list[Processor | None] = []
        defaults: list[Any] = []
        for name in self.names:
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise ValueError(f"bound parameter {name!r} has a callable default")
            defaults.append(_REQUIRED if bind.required else bind.value)
            processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        self.processors: tuple[Processor | None, ...] = tuple(processors)
        """One per parameter, in order (``None``: the value goes as it is)."""
        self._defaults = tuple(defaults)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The statement's parameters in order, each processed by its type.

        Raises:
            ValueError: a parameter without a value of its own is missing from ``values``.
        """
        given = []
        for name, default, process in zip(self.names, self._defaults, self.processors, strict=True):
            value = values.get(name, default)
            if value is _REQUIRED:
                raise ValueError(f"no value given for the bound parameter {name!r}")
            given.append(value if process is None or value is None else process(value))
        return tuple(given)
