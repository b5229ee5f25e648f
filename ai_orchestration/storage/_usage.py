"""LLM usage storage: every call with its tokens and cost, tenants' budgets, and budget alerts.

Aggregation happens in SQL (``GROUP BY`` over the requested dimensions), so reading a month of
usage moves one row per group out of the database, not one per call.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import ColumnElement, CursorResult, Select, Table, case, func, select

from ai_orchestration.storage._bulk import BulkInsert
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_aware,
    require_tenant,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import LlmBudgetAlertModel, LlmBudgetModel, LlmCallModel
from ai_orchestration.storage._pages import (
    InvalidPageTokenError,
    decode_page_token,
    encode_page_token,
)

__all__ = [
    "DEFAULT_SOFT_THRESHOLD",
    "USAGE_DIMENSIONS",
    "BudgetAlertRecord",
    "BudgetLimits",
    "NewLlmCall",
    "StoredBudget",
    "UsageDimension",
    "UsageGroup",
    "UsagePage",
    "UsageRepository",
    "UsageTotals",
]

UsageDimension = Literal["model", "deployment", "run", "step", "template", "day"]
USAGE_DIMENSIONS: Final[tuple[UsageDimension, ...]] = (
    "model",
    "deployment",
    "run",
    "step",
    "template",
    "day",
)
"""What usage can be grouped by; ``template`` groups by name and version."""

MAX_CALLS_PER_INSERT: Final[int] = 1000
"""Most rows :meth:`UsageRepository.add_calls` writes at once (one transaction holds them)."""

DEFAULT_SOFT_THRESHOLD: Final[float] = 0.8
"""Fraction of a monthly limit at which the alert is raised when the budget does not say."""

_Call = LlmCallModel
_Budget = LlmBudgetModel
_Alert = LlmBudgetAlertModel

_COLUMNS: Final[dict[UsageDimension, tuple[Any, ...]]] = {
    "model": (_Call.model,),
    "deployment": (_Call.deployment,),
    "run": (_Call.run_id,),
    "step": (_Call.step,),
    "template": (_Call.template, _Call.template_version),
    "day": (_Call.day,),
}


@dataclass(frozen=True, slots=True)
class NewLlmCall:
    """One finished LLM call to store with :meth:`UsageRepository.add_call` / ``add_calls``."""

    called_at: datetime
    """When the call finished (aware)."""
    model: str
    """Logical model asked for."""
    deployment: str
    """Deployment that answered."""
    prompt_tokens: int = 0
    """Prompt tokens."""
    completion_tokens: int = 0
    """Completion tokens."""
    cost_usd: float = 0.0
    """Cost in US dollars."""
    run_id: str = ""
    """Workflow run, if any."""
    step: str = ""
    """Workflow step, if any."""
    template: str = ""
    """Prompt template name, if any."""
    template_version: int = 0
    """Prompt template version."""
    cached: bool = False
    """Answered from a response cache."""
    degraded: bool = False
    """The deterministic template answer."""
    truncated: bool = False
    """A stream that failed after its first token."""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over a set of calls."""

    calls: int = 0
    """Number of calls."""
    prompt_tokens: int = 0
    """Prompt tokens."""
    completion_tokens: int = 0
    """Completion tokens."""
    cost_usd: float = 0.0
    """Cost in US dollars."""
    cached_calls: int = 0
    """Calls answered from a cache."""
    degraded_calls: int = 0
    """Degraded (template) answers."""
    truncated_calls: int = 0
    """Truncated streams."""

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One row of grouped usage; the fields of dimensions not grouped by are empty / 0."""

    totals: UsageTotals
    """Sums of the group."""
    model: str = ""
    """Logical model."""
    deployment: str = ""
    """Deployment."""
    run_id: str = ""
    """Workflow run."""
    step: str = ""
    """Workflow step."""
    template: str = ""
    """Template name."""
    template_version: int = 0
    """Template version."""
    day: str = ""
    """UTC day, ``YYYY-MM-DD``."""


@dataclass(frozen=True, slots=True)
class UsagePage:
    """A page of grouped usage and the totals of the whole window."""

    groups: tuple[UsageGroup, ...]
    """Groups ordered by their values."""
    totals: UsageTotals
    """Totals over every group (not only this page)."""
    next_page_token: str = ""
    """Token of the next page; empty on the last."""


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """A tenant's limits; 0 means no limit."""

    monthly_limit_usd: float = 0.0
    """Monthly spend limit in US dollars."""
    monthly_token_limit: int = 0
    """Monthly token limit (prompt + completion)."""
    soft_threshold: float = DEFAULT_SOFT_THRESHOLD
    """Fraction of a monthly limit that raises the alert, in (0, 1]."""
    requests_per_minute: int = 0
    """Calls per minute."""
    tokens_per_minute: int = 0
    """Tokens per minute."""

    def __post_init__(self) -> None:
        if not 0 < self.soft_threshold <= 1:
            raise ValueError(f"soft_threshold must be in (0, 1], got {self.soft_threshold}")
        numbers = (
            self.monthly_limit_usd,
            self.monthly_token_limit,
            self.requests_per_minute,
            self.tokens_per_minute,
        )
        if any(value < 0 for value in numbers):
            raise ValueError("limits cannot be negative (0 means no limit)")


@dataclass(frozen=True, slots=True)
class StoredBudget:
    """A tenant's stored limits."""

    limits: BudgetLimits
    """The limits."""
    updated_at: datetime
    """When they were last set."""


@dataclass(frozen=True, slots=True)
class BudgetAlertRecord:
    """The soft-threshold alert of one tenant-month."""

    month: str
    """``YYYY-MM`` of the UTC month."""
    cost_usd: float
    """Month-to-date cost when the alert was raised."""
    tokens: int
    """Month-to-date tokens when the alert was raised."""
    limits: BudgetLimits = field(default_factory=BudgetLimits)
    """The limits in force then."""
    raised_at: datetime | None = None
    """When it was raised (set by the repository when None)."""


class UsageRepository:
    """Stores and aggregates one tenant's LLM usage at a time; no method reaches another
    (:meth:`add_calls` writes each of its rows to the tenant that row names)."""

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies ``updated_at`` / ``raised_at``."""
        self._database = database
        self._clock = clock

    async def add_call(self, tenant_id: str, call: NewLlmCall) -> str:
        """Store one call; returns its generated id."""
        return (await self.add_calls([(tenant_id, call)]))[0]

    async def add_calls(self, calls: Sequence[tuple[str, NewLlmCall]]) -> list[str]:
        """Store ``(tenant_id, call)`` pairs with one INSERT statement in one transaction.

        The batch writer of the accountant's write-behind: its rows may belong to several
        tenants, so each pair names its own (the one method that is not about one tenant).
        Every row is validated before any is written, and either all are stored or none.
        Returns the generated ids in order.

        The statement is sent once with every row's parameters (the driver's ``executemany``
        through :class:`BulkInsert`: sqlite3 steps one prepared statement, asyncpg pipelines
        it). A literal multi-row ``VALUES`` list is several times slower on both backends (nearly
        all of it compiling the statement, which SQLAlchemy cannot cache) and that time would
        block the event loop.

        Raises:
            ValueError: an empty tenant, a naive ``called_at``, or more than
                :data:`MAX_CALLS_PER_INSERT` rows.
        """
        if len(calls) > MAX_CALLS_PER_INSERT:
            raise ValueError(f"at most {MAX_CALLS_PER_INSERT} calls per batch, got {len(calls)}")
        prepared = [_call_values(tenant_id, call) for tenant_id, call in calls]
        if not prepared:
            return []
        rows = [tuple(values[name] for name in _INSERT_CALLS.columns) for _, values in prepared]
        async with self._database.core_transaction() as connection:
            await _INSERT_CALLS.execute(connection, rows)
        return [call_id for call_id, _ in prepared]

    async def totals(self, tenant_id: str, *, start: datetime, end: datetime) -> UsageTotals:
        """Sums over the calls in ``[start, end)``."""
        statement = select(*_sums()).where(*_window(tenant_id, start, end))
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).one()
        return _totals(row)

    async def aggregate(
        self,
        tenant_id: str,
        *,
        start: datetime,
        end: datetime,
        group_by: Sequence[UsageDimension] = (),
        page_size: int = 1000,
        page_token: str = "",
    ) -> UsagePage:
        """Usage in ``[start, end)`` grouped by ``group_by`` (in that column order).

        Raises:
            InvalidPageTokenError: ``page_token`` was not issued for this tenant, window and
                grouping.
            ValueError: an unknown or repeated dimension, or a page size below 1.
        """
        dimensions = _check_dimensions(group_by)
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        scope = [tenant_id, start.isoformat(), end.isoformat(), *dimensions]
        offset = 0
        if page_token:
            offset = decode_page_token(page_token, scope, _offset)
        columns = [column for name in dimensions for column in _COLUMNS[name]]
        where = _window(tenant_id, start, end)
        statement: Select[Any] = (
            select(*columns, *_sums())
            .where(*where)
            .group_by(*columns)
            .order_by(*columns)
            .limit(page_size + 1)
            .offset(offset)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).all()
            totals = _totals((await session.execute(select(*_sums()).where(*where))).one())
        if not dimensions:
            # Without grouping the single row is the totals (an empty window included).
            return UsagePage(groups=(UsageGroup(totals=totals),), totals=totals)
        more = len(rows) > page_size
        groups = tuple(_group(dimensions, row) for row in rows[:page_size])
        token = encode_page_token(scope, [offset + page_size]) if more else ""
        return UsagePage(groups=groups, totals=totals, next_page_token=token)

    async def get_budget(self, tenant_id: str) -> StoredBudget | None:
        """The tenant's limits, or None while never set."""
        statement = select(_Budget).where(_Budget.tenant_id == require_tenant(tenant_id))
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        if row is None:
            return None
        return StoredBudget(limits=_limits(row), updated_at=row.updated_at)

    async def set_budget(
        self, tenant_id: str, limits: BudgetLimits, *, only: Collection[str] | None = None
    ) -> StoredBudget:
        """Create or replace the tenant's limits (an upsert) and return what is stored.

        ``only``: names of :class:`BudgetLimits` fields to change on an existing budget; the
        others keep their stored values (a new budget takes every field from ``limits``). The
        merge happens inside the upsert, so two callers changing different limits at once both
        keep their change. None changes every field.
        """
        names = [item.name for item in fields(BudgetLimits)]
        changed = names if only is None else [name for name in names if name in only]
        unknown = set(only or ()) - set(names)
        if unknown:
            raise ValueError(f"not budget limits: {', '.join(sorted(unknown))}")
        updated_at = require_aware("clock()", self._clock())
        tenant = require_tenant(tenant_id)
        values: dict[str, Any] = {
            "tenant_id": tenant,
            **{name: getattr(limits, name) for name in names},
            "updated_at": updated_at,
        }
        statement = dialect_insert(self._database.backend, _Budget).values(values)
        upsert = statement.on_conflict_do_update(
            index_elements=[_Budget.tenant_id],
            set_={key: statement.excluded[key] for key in [*changed, "updated_at"]},
        )
        async with self._database.transaction() as session:
            await session.execute(upsert)
            if only is None:
                stored = limits
            else:
                row = await session.execute(select(_Budget).where(_Budget.tenant_id == tenant))
                stored = _limits(row.scalar_one())
        return StoredBudget(limits=stored, updated_at=updated_at)

    async def add_alert(self, tenant_id: str, alert: BudgetAlertRecord) -> bool:
        """Store the month's alert unless it exists; True when this call stored it.

        Atomic on both backends, so of several replicas crossing the threshold at once exactly
        one gets True.
        """
        values: dict[str, Any] = {
            "tenant_id": require_tenant(tenant_id),
            "month": alert.month,
            "cost_usd": alert.cost_usd,
            "tokens": alert.tokens,
            "monthly_limit_usd": alert.limits.monthly_limit_usd,
            "monthly_token_limit": alert.limits.monthly_token_limit,
            "raised_at": require_aware("raised_at", alert.raised_at or self._clock()),
        }
        statement = dialect_insert(self._database.backend, _Alert).values(values)
        statement = statement.on_conflict_do_nothing(
            index_elements=[_Alert.tenant_id, _Alert.month]
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement)
        return cast(CursorResult[Any], result).rowcount == 1

    async def get_alert(self, tenant_id: str, month: str) -> BudgetAlertRecord | None:
        """The alert of ``month`` (``YYYY-MM``), or None if none was raised."""
        statement = select(_Alert).where(
            _Alert.tenant_id == require_tenant(tenant_id), _Alert.month == month
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        if row is None:
            return None
        return BudgetAlertRecord(
            month=row.month,
            cost_usd=row.cost_usd,
            tokens=row.tokens,
            limits=BudgetLimits(
                monthly_limit_usd=row.monthly_limit_usd,
                monthly_token_limit=row.monthly_token_limit,
            ),
            raised_at=row.raised_at,
        )


_INSERT_CALLS: Final[BulkInsert] = BulkInsert(
    cast(Table, _Call.__table__),
    (
        "tenant_id",
        "call_id",
        "called_at",
        "day",
        "model",
        "deployment",
        "run_id",
        "step",
        "template",
        "template_version",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "cached",
        "degraded",
        "truncated",
    ),
    repeated=("tenant_id", "called_at", "day", "model", "deployment"),
)


def _call_values(tenant_id: str, call: NewLlmCall) -> tuple[str, dict[str, Any]]:
    """A new call's generated id and its row."""
    called_at = require_aware("called_at", call.called_at)
    call_id = uuid.uuid4().hex
    return call_id, {
        "tenant_id": require_tenant(tenant_id),
        "call_id": call_id,
        "called_at": called_at,
        "day": called_at.strftime("%Y-%m-%d"),
        "model": call.model,
        "deployment": call.deployment,
        "run_id": call.run_id,
        "step": call.step,
        "template": call.template,
        "template_version": call.template_version,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "cost_usd": call.cost_usd,
        "cached": call.cached,
        "degraded": call.degraded,
        "truncated": call.truncated,
    }


def _window(tenant_id: str, start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        _Call.tenant_id == require_tenant(tenant_id),
        _Call.called_at >= require_aware("start", start),
        _Call.called_at < require_aware("end", end),
    )


def _count_if(column: Any) -> Any:
    return func.coalesce(func.sum(case((column, 1), else_=0)), 0)


def _sums() -> tuple[Any, ...]:
    return (
        func.count(),
        func.coalesce(func.sum(_Call.prompt_tokens), 0),
        func.coalesce(func.sum(_Call.completion_tokens), 0),
        func.coalesce(func.sum(_Call.cost_usd), 0.0),
        _count_if(_Call.cached),
        _count_if(_Call.degraded),
        _count_if(_Call.truncated),
    )


def _totals(row: Sequence[Any]) -> UsageTotals:
    # PostgreSQL sums integers to NUMERIC: normalise every value to the Python type.
    calls, prompt, completion, cost, cached, degraded, truncated = row[-7:]
    return UsageTotals(
        calls=int(calls),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=float(cost),
        cached_calls=int(cached),
        degraded_calls=int(degraded),
        truncated_calls=int(truncated),
    )


def _group(dimensions: Sequence[UsageDimension], row: Sequence[Any]) -> UsageGroup:
    values: dict[str, Any] = {}
    position = 0
    for name in dimensions:
        if name == "template":
            values["template"], values["template_version"] = row[position], row[position + 1]
            position += 2
        else:
            values["run_id" if name == "run" else name] = row[position]
            position += 1
    return UsageGroup(totals=_totals(row), **values)


def _check_dimensions(group_by: Sequence[str]) -> tuple[UsageDimension, ...]:
    unknown = [name for name in group_by if name not in USAGE_DIMENSIONS]
    if unknown or len(set(group_by)) != len(group_by):
        raise ValueError(
            f"group_by must name distinct dimensions of {', '.join(USAGE_DIMENSIONS)}; "
            f"got {list(group_by)}"
        )
    return tuple(cast(UsageDimension, name) for name in group_by)


def _offset(cursor: list[Any]) -> int:
    (offset,) = cursor
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidPageTokenError("page_token holds no valid offset")
    return offset


def _limits(row: LlmBudgetModel) -> BudgetLimits:
    return BudgetLimits(
        monthly_limit_usd=row.monthly_limit_usd,
        monthly_token_limit=row.monthly_token_limit,
        soft_threshold=row.soft_threshold,
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
    )
