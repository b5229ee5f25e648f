"""UsageService: a thin adapter from ``crm.ai.v1`` usage messages onto usage storage.

Authentication, the role check, request validation (protovalidate) and error mapping happen in
the interceptor; the tenant is the caller's, never a field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import grpc.aio
from crm.ai.v1 import usage_pb2, usage_pb2_grpc
from google.protobuf.message import Message

from ai_orchestration import errors
from ai_orchestration.api._validation import bad_page_token, masked_paths
from ai_orchestration.llm import BudgetStatus, budget_status
from ai_orchestration.security import current_principal
from ai_orchestration.storage import (
    DEFAULT_SOFT_THRESHOLD,
    BudgetLimits,
    Clock,
    InvalidPageTokenError,
    UsageDimension,
    UsageGroup,
    UsageRepository,
    UsageTotals,
    utc_now,
)
from ai_orchestration.wire.times import timestamp

DEFAULT_PAGE_SIZE: Final[int] = 1000
MAX_WINDOW: Final[timedelta] = timedelta(days=400)
"""Longest GetUsage window, so one request cannot scan years of calls."""

_DIMENSIONS: Final[dict[int, UsageDimension]] = {
    usage_pb2.USAGE_DIMENSION_MODEL: "model",
    usage_pb2.USAGE_DIMENSION_DEPLOYMENT: "deployment",
    usage_pb2.USAGE_DIMENSION_RUN: "run",
    usage_pb2.USAGE_DIMENSION_STEP: "step",
    usage_pb2.USAGE_DIMENSION_TEMPLATE: "template",
    usage_pb2.USAGE_DIMENSION_DAY: "day",
}

_BUDGET_FIELDS: Final[tuple[str, ...]] = (
    "monthly_limit_usd",
    "monthly_token_limit",
    "soft_threshold",
    "requests_per_minute",
    "tokens_per_minute",
)
"""Fields of ``Budget`` a SetBudget ``update_mask`` may name (the rest are output only)."""

Context = grpc.aio.ServicerContext[Message, Message]


def _window(request: usage_pb2.GetUsageRequest) -> tuple[datetime, datetime]:
    start = request.start_time.ToDatetime(tzinfo=UTC)
    end = request.end_time.ToDatetime(tzinfo=UTC)
    if end <= start or end - start > MAX_WINDOW:
        raise errors.InvalidArgumentError(
            "invalid GetUsageRequest: end_time must be after start_time and at most "
            f"{MAX_WINDOW.days} days later",
            [
                errors.FieldViolation(
                    "end_time",
                    f"must be after start_time and at most {MAX_WINDOW.days} days later; "
                    "split longer windows",
                    "USAGE_WINDOW",
                )
            ],
        )
    return start, end


def _totals(totals: UsageTotals) -> usage_pb2.UsageTotals:
    return usage_pb2.UsageTotals(
        calls=totals.calls,
        prompt_tokens=totals.prompt_tokens,
        completion_tokens=totals.completion_tokens,
        cost_usd=totals.cost_usd,
        cached_calls=totals.cached_calls,
        degraded_calls=totals.degraded_calls,
        truncated_calls=totals.truncated_calls,
    )


def _row(group: UsageGroup) -> usage_pb2.UsageRow:
    row = usage_pb2.UsageRow(
        model=group.model,
        deployment=group.deployment,
        run_id=group.run_id,
        step=group.step,
        template=group.template,
        template_version=group.template_version,
        totals=_totals(group.totals),
    )
    if group.day:
        day = datetime.strptime(group.day, "%Y-%m-%d").replace(tzinfo=UTC)
        row.day_start_time.CopyFrom(timestamp(day))
    return row


def _budget(status: BudgetStatus) -> usage_pb2.Budget:
    limits = status.limits
    budget = usage_pb2.Budget(
        monthly_limit_usd=limits.monthly_limit_usd,
        monthly_token_limit=limits.monthly_token_limit,
        soft_threshold=limits.soft_threshold,
        requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute,
        month_to_date_cost_usd=status.used.cost_usd,
        month_to_date_tokens=status.used.tokens,
        forecast_cost_usd=status.forecast.cost_usd,
        forecast_tokens=status.forecast.tokens,
        soft_threshold_crossed=status.soft_threshold_crossed,
        month_start_time=timestamp(status.month_start),
        month_end_time=timestamp(status.month_end),
    )
    if status.alert_time is not None:
        budget.soft_threshold_alert_time.CopyFrom(timestamp(status.alert_time))
    if status.updated_at is not None:
        budget.update_time.CopyFrom(timestamp(status.updated_at))
    return budget


class UsageServicer(usage_pb2_grpc.UsageServiceServicer):
    """Serves ``crm.ai.v1.UsageService`` from a :class:`UsageRepository`."""

    def __init__(self, *, repository: UsageRepository, clock: Clock = utc_now) -> None:
        self.repository = repository
        self.clock = clock

    async def GetUsage(
        self, request: usage_pb2.GetUsageRequest, context: Context
    ) -> usage_pb2.GetUsageResponse:
        start, end = _window(request)
        try:
            page = await self.repository.aggregate(
                current_principal().tenant_id,
                start=start,
                end=end,
                group_by=[_DIMENSIONS[value] for value in request.group_by],
                page_size=request.page_size or DEFAULT_PAGE_SIZE,
                page_token=request.page_token,
            )
        except InvalidPageTokenError as error:
            raise bad_page_token(error) from error
        return usage_pb2.GetUsageResponse(
            rows=[_row(group) for group in page.groups],
            totals=_totals(page.totals),
            next_page_token=page.next_page_token,
        )

    async def GetBudget(
        self, request: usage_pb2.GetBudgetRequest, context: Context
    ) -> usage_pb2.Budget:
        tenant = current_principal().tenant_id
        return _budget(await budget_status(self.repository, tenant, now=self.clock()))

    async def SetBudget(
        self, request: usage_pb2.SetBudgetRequest, context: Context
    ) -> usage_pb2.Budget:
        tenant = current_principal().tenant_id
        paths = masked_paths(request.update_mask.paths, _BUDGET_FIELDS)
        # Fields outside the mask start at "no limit" on a tenant's first budget; on an
        # existing one the repository keeps their stored values.
        given: dict[str, Any] = {name: getattr(request.budget, name) for name in paths}
        given["soft_threshold"] = given.get("soft_threshold") or DEFAULT_SOFT_THRESHOLD
        limits = BudgetLimits(**given)
        await self.repository.set_budget(tenant, limits, only=paths)
        return _budget(await budget_status(self.repository, tenant, now=self.clock()))
