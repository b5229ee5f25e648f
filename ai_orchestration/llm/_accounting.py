"""Cost accounting and budgets: the gateway's :class:`UsageLedger`.

:class:`UsageAccountant` checks a call against the tenant's monthly budgets (USD and tokens) and
per-minute limits **before** it runs, and records its tokens and cost after it. Month-to-date
totals are kept per tenant-month, seeded once from storage: in this process by default, or in
Redis (``INCRBYFLOAT``) when a Redis URL is given so every replica sees every replica's spend.
Crossing a budget's soft threshold stores one alert per tenant-month and calls ``on_alert``.
The ``llm_calls`` rows themselves are written behind the calls, in batches (:mod:`._usage_writer`).

Months are UTC calendar months; the forecast is month-to-date divided by the elapsed fraction of
the month (the current burn rate carried to the month's end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import redis.asyncio

from ai_orchestration._redis import redis_client
from ai_orchestration.errors import QuotaViolation
from ai_orchestration.llm._ratelimit import (
    InProcessRateLimiter,
    RateLimiter,
    RateLimits,
    RedisRateLimiter,
)
from ai_orchestration.llm._types import (
    BudgetExceededError,
    CallContext,
    Completion,
    CompletionRequest,
)
from ai_orchestration.llm._usage_writer import UsageWriter, WriteBehindPolicy
from ai_orchestration.storage import (
    BudgetAlertRecord,
    BudgetLimits,
    Clock,
    NewLlmCall,
    UsageRepository,
    utc_now,
)

__all__ = [
    "AlertCallback",
    "BudgetAlert",
    "BudgetStatus",
    "MonthToDate",
    "PricePerToken",
    "UsageAccountant",
    "budget_status",
    "forecast",
    "month_bounds",
]

DEFAULT_BUDGET_TTL_SECONDS: Final[float] = 5.0
"""How long a replica trusts a budget it read before reading it again."""
_KEY_TTL: Final[timedelta] = timedelta(days=40)
"""Redis month-to-date keys outlive their month by this much, then expire."""


@dataclass(frozen=True, slots=True)
class MonthToDate:
    """What a tenant has used in the current month."""

    cost_usd: float = 0.0
    """Cost in US dollars."""
    tokens: int = 0
    """Prompt plus completion tokens."""


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """The soft threshold of a tenant's monthly budget was crossed (raised once a month)."""

    tenant_id: str
    """The tenant."""
    month: str
    """``YYYY-MM`` (UTC)."""
    used: MonthToDate
    """Month-to-date use when it was crossed."""
    limits: BudgetLimits
    """The budget in force."""
    raised_at: datetime
    """When it was raised."""


AlertCallback = Callable[[BudgetAlert], Awaitable[None]]
"""Told about each new soft-threshold alert (e.g. to push it to real-time alerts)."""
PricePerToken = Callable[[str], float]
"""US dollars per token of a logical model, to estimate a call's cost before it runs."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A tenant's budget and where the current month stands (what ``GetBudget`` returns)."""

    limits: BudgetLimits
    """The limits (defaults, i.e. none, while never set)."""
    updated_at: datetime | None
    """When the limits were last set; None while never."""
    month_start: datetime
    """Start of the current month (UTC)."""
    month_end: datetime
    """Start of the next month: when monthly limits reset."""
    used: MonthToDate
    """Month-to-date use."""
    forecast: MonthToDate
    """Month-end use at the current burn rate."""
    soft_threshold_crossed: bool
    """Whether the month's use crossed the soft threshold of a limit."""
    alert_time: datetime | None
    """When this month's soft-threshold alert was raised; None if it was not."""


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of ``now``'s UTC month and of the next one."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def _month_key(now: datetime) -> str:
    return now.strftime("%Y-%m")


def forecast(used: MonthToDate, now: datetime) -> MonthToDate:
    """Month-end use if it goes on at the month's rate so far: used / elapsed fraction."""
    start, end = month_bounds(now)
    # At least one second elapsed, so the first instant of a month does not divide by zero.
    elapsed = max((now - start).total_seconds(), 1.0)
    factor = (end - start).total_seconds() / elapsed
    return MonthToDate(cost_usd=used.cost_usd * factor, tokens=round(used.tokens * factor))


def _crossed(used: MonthToDate, limits: BudgetLimits) -> bool:
    threshold = limits.soft_threshold
    usd, tokens = limits.monthly_limit_usd, limits.monthly_token_limit
    return (usd > 0 and used.cost_usd >= threshold * usd) or (
        tokens > 0 and used.tokens >= threshold * tokens
    )


async def budget_status(
    repository: UsageRepository, tenant_id: str, *, now: datetime
) -> BudgetStatus:
    """The tenant's budget with month-to-date use read from storage (the system of record)."""
    start, end = month_bounds(now)
    stored = await repository.get_budget(tenant_id)
    limits = stored.limits if stored is not None else BudgetLimits()
    totals = await repository.totals(tenant_id, start=start, end=end)
    used = MonthToDate(cost_usd=totals.cost_usd, tokens=totals.tokens)
    alert = await repository.get_alert(tenant_id, _month_key(now))
    return BudgetStatus(
        limits=limits,
        updated_at=stored.updated_at if stored is not None else None,
        month_start=start,
        month_end=end,
        used=used,
        forecast=forecast(used, now),
        soft_threshold_crossed=alert is not None or _crossed(used, limits),
        alert_time=alert.raised_at if alert is not None else None,
    )


class _LocalTotals:
    """Month-to-date totals in this process, per tenant-month."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str], MonthToDate] = {}

    async def get(self, tenant_id: str, month: str) -> MonthToDate | None:
        return self._totals.get((tenant_id, month))

    async def seed(self, tenant_id: str, month: str, used: MonthToDate) -> None:
        self._totals.setdefault((tenant_id, month), used)

    async def add(self, tenant_id: str, month: str, cost_usd: float, tokens: int) -> MonthToDate:
        old = self._totals.get((tenant_id, month), MonthToDate())
        new = MonthToDate(cost_usd=old.cost_usd + cost_usd, tokens=old.tokens + tokens)
        self._totals[(tenant_id, month)] = new
        return new

    async def close(self) -> None:
        self._totals.clear()


class _RedisTotals:
    """Month-to-date totals in Redis, shared by every replica."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _keys(self, tenant_id: str, month: str) -> tuple[str, str]:
        base = f"{self._prefix}:{{{tenant_id}}}:{month}"
        return f"{base}:usd", f"{base}:tokens"

    async def get(self, tenant_id: str, month: str) -> MonthToDate | None:
        usd, tokens = await self._redis.mget(self._keys(tenant_id, month))
        if usd is None or tokens is None:
            return None
        return MonthToDate(cost_usd=float(usd), tokens=int(tokens))

    async def seed(self, tenant_id: str, month: str, used: MonthToDate) -> None:
        usd, tokens = self._keys(tenant_id, month)
        # MSETNX: of several replicas seeding at once, the first wins and the rest keep its
        # value (each seeds before it records, so no recorded call is lost or counted twice).
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.msetnx({usd: repr(used.cost_usd), tokens: used.tokens})
            pipe.expire(usd, _KEY_TTL)
            pipe.expire(tokens, _KEY_TTL)
            await pipe.execute()

    async def add(self, tenant_id: str, month: str, cost_usd: float, tokens: int) -> MonthToDate:
        usd_key, tokens_key = self._keys(tenant_id, month)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(usd_key, cost_usd)
            pipe.incrby(tokens_key, tokens)
            pipe.expire(usd_key, _KEY_TTL)
            pipe.expire(tokens_key, _KEY_TTL)
            usd, total_tokens, *_ = await pipe.execute()
        return MonthToDate(cost_usd=float(usd), tokens=int(total_tokens))

    async def close(self) -> None:
        await self._redis.aclose()


class UsageAccountant:
    """The gateway's :class:`~ai_orchestration.llm.UsageLedger`: budgets, limits, accounting.

    :meth:`record` updates the month-to-date totals (in this process, or in Redis for every
    replica) and the soft-threshold alert on the call's path, so budgets stay exact; the call's
    ``llm_calls`` row is only queued, and one background task stores the queue in batches
    (:class:`UsageWriter`, tuned by ``write_behind``). That keeps a database commit off every
    LLM call, at a price: ``GetUsage`` and :func:`budget_status` (which read storage) lag up to
    one flush interval (50 ms by default) behind, and a process killed with SIGKILL loses the
    rows of its last interval, while the Redis totals that enforce budgets at scale already
    count them (in-process totals are seeded again from storage after a restart, without
    them). A failed write is logged and retried; when too many rows wait, :meth:`record`
    waits too. :meth:`flush` stores the queue now (for readers that need the rows at once).

    ``async with`` or :meth:`close` stores what is queued and releases the Redis connections
    it opened.
    """

    def __init__(
        self,
        *,
        repository: UsageRepository,
        redis_url: str | None = None,
        rate_limiter: RateLimiter | None = None,
        on_alert: AlertCallback | None = None,
        price_per_token: PricePerToken | None = None,
        clock: Clock = utc_now,
        budget_ttl_seconds: float = DEFAULT_BUDGET_TTL_SECONDS,
        key_prefix: str = "aio:llm",
        write_behind: WriteBehindPolicy | None = None,
    ) -> None:
        """Collaborators:

        - ``redis_url``: keep month-to-date totals (and, unless ``rate_limiter`` is given, the
          rate-limit windows) in Redis, shared by replicas; in this process when None.
        - ``price_per_token``: estimates a call's cost before it runs; by default the tenant's
          average cost per token this month.
        - ``clock``: the time calls are recorded at and months are judged by.
        - ``write_behind``: when the queued ``llm_calls`` rows are written (batch size,
          interval, queue bound); the defaults of :class:`WriteBehindPolicy` when None.
        """
        self._repository = repository
        self._writer = UsageWriter(repository=repository, policy=write_behind)
        self._on_alert = on_alert
        self._price = price_per_token
        self._clock = clock
        self._budget_ttl = budget_ttl_seconds
        self._budgets: dict[str, tuple[float, BudgetLimits]] = {}
        self._alerted: set[tuple[str, str]] = set()
        self._seeding: dict[tuple[str, str], asyncio.Lock] = {}
        self._totals: _LocalTotals | _RedisTotals
        if redis_url is None:
            self._totals = _LocalTotals()
            self._limiter = rate_limiter or InProcessRateLimiter()
        else:
            self._totals = _RedisTotals(redis_client(redis_url), key_prefix)
            self._limiter = rate_limiter or RedisRateLimiter.from_url(
                redis_url, key_prefix=f"{key_prefix}:rl"
            )
        self._closed = False

    async def check(self, context: CallContext, model: str, estimated_tokens: int) -> None:
        """Raise :class:`BudgetExceededError` if month-to-date use has reached a monthly limit
        or this call's estimate would exceed it, then count the call against the per-minute
        limits (:class:`RateLimitedError` when one is reached)."""
        tenant = context.tenant_id
        limits = await self.limits(tenant)
        if limits.monthly_limit_usd > 0 or limits.monthly_token_limit > 0:
            now = self._clock()
            used = await self.month_to_date(tenant, now=now)
            violations = self._budget_violations(tenant, model, estimated_tokens, used, limits)
            if violations:
                raise BudgetExceededError(
                    f"monthly LLM budget of tenant {tenant} exhausted: "
                    + "; ".join(item.description for item in violations),
                    metadata={"month": _month_key(now)},
                    quota_violations=violations,
                )
        rates = RateLimits(
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
        )
        await self._limiter.acquire(tenant, estimated_tokens, rates)

    async def record(self, request: CompletionRequest, completion: Completion) -> None:
        """Add the call to the month-to-date totals, raise the soft-threshold alert if this call
        crossed it (once per tenant-month), and queue its row for storage.

        Waits while the write-behind queue is full (storage failing for a while).

        Raises:
            ValueError: an empty tenant or a naive clock (refused here, on the caller's path,
                rather than by the background writer).
            RuntimeError: the accountant is closed.
        """
        context = request.context
        now = self._clock()
        if not context.tenant_id or now.tzinfo is None:
            raise ValueError("a call is recorded for a non-empty tenant at an aware time")
        usage = completion.usage
        # A call that used nothing (a cache hit, the degraded answer) changes no total and
        # crosses no threshold: skip the round trips (with Redis, two of a cache hit's three).
        if usage.total_tokens or usage.cost_usd:
            month = _month_key(now)
            # Seed before counting, so the seed never already includes the call added below
            # (the seed reads storage, where this process's queued rows are not yet).
            await self.month_to_date(context.tenant_id, now=now)
            used = await self._totals.add(
                context.tenant_id, month, usage.cost_usd, usage.total_tokens
            )
            await self._maybe_alert(context.tenant_id, month, used, now)
        await self._writer.put(
            context.tenant_id,
            NewLlmCall(
                called_at=now,
                model=completion.model or request.model,
                deployment=completion.deployment,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=usage.cost_usd,
                run_id=context.run_id,
                step=context.step,
                template=context.template,
                template_version=context.template_version,
                cached=bool(completion.cached),
                degraded=completion.degraded,
                truncated=completion.truncated,
            ),
        )

    async def flush(self) -> None:
        """Store every call recorded so far now; returns once they are in storage."""
        await self._writer.flush()

    @property
    def writer(self) -> UsageWriter:
        """The write-behind of the ``llm_calls`` rows (queue depth, failed writes)."""
        return self._writer

    async def month_to_date(self, tenant_id: str, *, now: datetime | None = None) -> MonthToDate:
        """The tenant's use this month, seeded from storage on first use."""
        now = now or self._clock()
        month = _month_key(now)
        used = await self._totals.get(tenant_id, month)
        if used is not None:
            return used
        lock = self._seeding.setdefault((tenant_id, month), asyncio.Lock())
        async with lock:
            used = await self._totals.get(tenant_id, month)
            if used is None:
                start, end = month_bounds(now)
                totals = await self._repository.totals(tenant_id, start=start, end=end)
                seed = MonthToDate(cost_usd=totals.cost_usd, tokens=totals.tokens)
                await self._totals.seed(tenant_id, month, seed)
                used = await self._totals.get(tenant_id, month) or seed
        return used

    async def limits(self, tenant_id: str) -> BudgetLimits:
        """The tenant's limits, re-read from storage at most every ``budget_ttl_seconds``."""
        cached = self._budgets.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < self._budget_ttl:
            return cached[1]
        stored = await self._repository.get_budget(tenant_id)
        limits = stored.limits if stored is not None else BudgetLimits()
        self._budgets[tenant_id] = (time.monotonic(), limits)
        return limits

    def forget_budget(self, tenant_id: str) -> None:
        """Drop the cached limits of ``tenant_id`` (call after changing them in this process)."""
        self._budgets.pop(tenant_id, None)

    async def close(self) -> None:
        """Store the queued rows, then close the Redis connections this accountant opened;
        safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._writer.close()
        finally:
            await self._limiter.close()
            await self._totals.close()

    async def __aenter__(self) -> UsageAccountant:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _budget_violations(
        self,
        tenant_id: str,
        model: str,
        estimated_tokens: int,
        used: MonthToDate,
        limits: BudgetLimits,
    ) -> list[QuotaViolation]:
        _, month_end = month_bounds(self._clock())
        resets = f"resets {month_end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        subject = f"tenant:{tenant_id}"
        violations: list[QuotaViolation] = []
        usd_limit, token_limit = limits.monthly_limit_usd, limits.monthly_token_limit
        estimate = estimated_tokens * self._price_per_token(model, used)
        if usd_limit > 0 and (used.cost_usd >= usd_limit or used.cost_usd + estimate > usd_limit):
            violations.append(
                QuotaViolation(
                    subject=subject,
                    description=(
                        f"monthly_limit_usd: ${used.cost_usd:.4f} of ${usd_limit:.4f} used this "
                        f"month, this call's estimate ${estimate:.4f}; {resets}"
                    ),
                )
            )
        if token_limit > 0 and (
            used.tokens >= token_limit or used.tokens + estimated_tokens > token_limit
        ):
            violations.append(
                QuotaViolation(
                    subject=subject,
                    description=(
                        f"monthly_token_limit: {used.tokens} of {token_limit} tokens used this "
                        f"month, this call's estimate {estimated_tokens}; {resets}"
                    ),
                )
            )
        return violations

    def _price_per_token(self, model: str, used: MonthToDate) -> float:
        if self._price is not None:
            return self._price(model)
        return used.cost_usd / used.tokens if used.tokens else 0.0

    async def _maybe_alert(
        self, tenant_id: str, month: str, used: MonthToDate, now: datetime
    ) -> None:
        if (tenant_id, month) in self._alerted:
            return
        limits = await self.limits(tenant_id)
        if not _crossed(used, limits):
            return
        self._alerted.add((tenant_id, month))
        record = BudgetAlertRecord(
            month=month, cost_usd=used.cost_usd, tokens=used.tokens, limits=limits, raised_at=now
        )
        # The stored row decides: whichever replica inserts it first tells on_alert.
        if await self._repository.add_alert(tenant_id, record) and self._on_alert is not None:
            await self._on_alert(
                BudgetAlert(
                    tenant_id=tenant_id, month=month, used=used, limits=limits, raised_at=now
                )
            )
