"""UsageService through a real in-process server, and the accountant behind the gateway.

Usage is recorded with a real :class:`UsageAccountant` against the server's own database; budget
and rate-limit refusals go out through the real interceptor as RESOURCE_EXHAUSTED with
``google.rpc.QuotaFailure`` / ``RetryInfo`` details.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import usage_pb2, usage_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf import empty_pb2, field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from ai_orchestration.api import ServicePipeline
from ai_orchestration.errors import ResourceExhaustedError
from ai_orchestration.llm._accounting import BudgetAlert, MonthToDate, UsageAccountant, forecast
from ai_orchestration.llm._ratelimit import InProcessRateLimiter, RateLimits, RedisRateLimiter
from ai_orchestration.llm._types import (
    BudgetExceededError,
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    RateLimitedError,
    Usage,
)
from ai_orchestration.observability import Metrics
from ai_orchestration.security import Authenticator, current_principal
from ai_orchestration.server import Server
from ai_orchestration.storage import BudgetLimits, UsageRepository
from tests.conftest import TokenFactory

DAY1 = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
DAY2 = datetime(2030, 1, 3, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand (aware datetimes, or seconds for the limiter)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _md(token: TokenFactory, **claims: Any) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(**claims)}"),)


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _request(
    tenant: str = "acme", model: str = "fast", run_id: str = "", step: str = ""
) -> CompletionRequest:
    return CompletionRequest(
        model=model,
        messages=(ChatMessage("user", "hello"),),
        context=CallContext(tenant_id=tenant, run_id=run_id, step=step),
    )


def _completion(
    prompt: int, completion: int, cost: float, *, deployment: str = "openai/gpt", **flags: Any
) -> Completion:
    return Completion(
        text="hi",
        model="fast",
        deployment=deployment,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost),
        **flags,
    )


def _accountant(server: Server, **options: Any) -> UsageAccountant:
    return UsageAccountant(repository=UsageRepository(database=server.database), **options)


async def _set_budget(server: Server, tenant: str = "acme", **limits: Any) -> UsageRepository:
    repository = UsageRepository(database=server.database)
    await repository.set_budget(tenant, BudgetLimits(**limits))
    return repository


async def _error(call: Any) -> ServiceError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return ServiceError.from_rpc_error(caught.value)


# --------------------------------------------------------------------------------------------
# Validation and roles


@pytest.mark.parametrize(
    ("request_message", "fields"),
    [
        (usage_pb2.GetUsageRequest(), {"start_time", "end_time"}),
        (
            usage_pb2.GetUsageRequest(
                start_time=_stamp(DAY1),
                end_time=_stamp(DAY2),
                group_by=[
                    usage_pb2.USAGE_DIMENSION_UNSPECIFIED,
                    usage_pb2.UsageDimension.ValueType(99),
                ],
                page_size=-1,
            ),
            {"group_by[0]", "group_by[1]", "page_size"},
        ),
        (
            usage_pb2.GetUsageRequest(
                start_time=_stamp(DAY1),
                end_time=_stamp(DAY2),
                group_by=[usage_pb2.USAGE_DIMENSION_DAY, usage_pb2.USAGE_DIMENSION_DAY],
            ),
            {"group_by"},
        ),
        (usage_pb2.GetUsageRequest(start_time=_stamp(DAY2), end_time=_stamp(DAY1)), {"end_time"}),
        (
            usage_pb2.GetUsageRequest(
                start_time=_stamp(DAY1), end_time=_stamp(DAY1 + timedelta(days=401))
            ),
            {"end_time"},
        ),
        (
            usage_pb2.GetUsageRequest(
                start_time=_stamp(DAY1), end_time=_stamp(DAY2), page_token="not-a-token"
            ),
            {"page_token"},
        ),
    ],
)
async def test_get_usage_validation_names_fields(
    channel: grpc.aio.Channel,
    token: TokenFactory,
    request_message: usage_pb2.GetUsageRequest,
    fields: set[str],
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    err = await _error(stub.GetUsage(request_message, metadata=_md(token)))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in err.field_violations} == fields


async def test_set_budget_validation_names_fields(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    err = await _error(stub.SetBudget(usage_pb2.SetBudgetRequest(), metadata=_md(token)))
    assert [v.field for v in err.field_violations] == ["budget"]
    bad = usage_pb2.Budget(
        monthly_limit_usd=-1, soft_threshold=1.5, requests_per_minute=-5, tokens_per_minute=-1
    )
    err = await _error(stub.SetBudget(usage_pb2.SetBudgetRequest(budget=bad), metadata=_md(token)))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in err.field_violations} == {
        "budget.monthly_limit_usd",
        "budget.soft_threshold",
        "budget.requests_per_minute",
        "budget.tokens_per_minute",
    }


@pytest.mark.parametrize(
    ("roles", "get_allowed", "set_allowed"),
    [
        (["usage.reader"], True, False),
        (["usage.admin"], True, True),
        (["admin"], True, True),
        (["scoring.admin", "workflow.operator"], False, False),
    ],
)
async def test_roles(
    channel: grpc.aio.Channel,
    token: TokenFactory,
    roles: list[str],
    get_allowed: bool,
    set_allowed: bool,
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    md = _md(token, roles=roles)
    calls: dict[str, tuple[Any, Any, bool]] = {
        "GetBudget": (stub.GetBudget, usage_pb2.GetBudgetRequest(), get_allowed),
        "GetUsage": (
            stub.GetUsage,
            usage_pb2.GetUsageRequest(start_time=_stamp(DAY1), end_time=_stamp(DAY2)),
            get_allowed,
        ),
        "SetBudget": (
            stub.SetBudget,
            usage_pb2.SetBudgetRequest(budget=usage_pb2.Budget(monthly_limit_usd=5)),
            set_allowed,
        ),
    }
    for name, (method, message, allowed) in calls.items():
        if allowed:
            await method(message, metadata=md)
        else:
            err = await _error(method(message, metadata=md))
            assert err.code is grpc.StatusCode.PERMISSION_DENIED, name


# --------------------------------------------------------------------------------------------
# GetUsage and budgets over the server's database


async def test_get_usage_groups_recorded_calls_per_tenant(
    server: Server, channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    clock = Clock(DAY1)
    async with _accountant(server, clock=clock) as accountant:
        await accountant.record(_request(run_id="r1", step="a"), _completion(100, 10, 0.5))
        await accountant.record(
            _request(run_id="r1", step="b"), _completion(0, 0, 0.0, cached="exact")
        )
        clock.now = DAY2
        await accountant.record(
            _request(model="smart", run_id="r2"), _completion(1000, 100, 2.0, deployment="claude")
        )
        await accountant.record(
            _request(),
            _completion(0, 0, 0.0, deployment="fallback/template", degraded=True),
        )
        await accountant.record(_request(tenant="globex"), _completion(5, 5, 9.0))

    stub = usage_pb2_grpc.UsageServiceStub(channel)
    start, end = _stamp(DAY1 - timedelta(days=1)), _stamp(DAY2 + timedelta(days=1))
    reply = await stub.GetUsage(
        usage_pb2.GetUsageRequest(
            start_time=start,
            end_time=end,
            group_by=[usage_pb2.USAGE_DIMENSION_DAY, usage_pb2.USAGE_DIMENSION_DEPLOYMENT],
        ),
        metadata=_md(token),
    )
    rows = [
        (r.day_start_time.ToDatetime(tzinfo=UTC), r.deployment, r.model, r.totals.calls)
        for r in reply.rows
    ]
    day1 = DAY1.replace(hour=0)
    day2 = DAY2.replace(hour=0)
    assert rows == [
        (day1, "openai/gpt", "", 2),
        (day2, "claude", "", 1),
        (day2, "fallback/template", "", 1),
    ]
    totals = reply.totals
    assert (totals.calls, totals.prompt_tokens, totals.completion_tokens) == (4, 1100, 110)
    assert totals.cost_usd == pytest.approx(2.5)
    assert (totals.cached_calls, totals.degraded_calls, totals.truncated_calls) == (1, 1, 0)

    by_run = await stub.GetUsage(
        usage_pb2.GetUsageRequest(
            start_time=start, end_time=end, group_by=[usage_pb2.USAGE_DIMENSION_RUN]
        ),
        metadata=_md(token),
    )
    assert [(r.run_id, r.totals.calls) for r in by_run.rows] == [("", 1), ("r1", 2), ("r2", 1)]

    other = await stub.GetUsage(
        usage_pb2.GetUsageRequest(start_time=start, end_time=end),
        metadata=_md(token, tenant_id="globex"),
    )
    assert [r.totals.calls for r in other.rows] == [1]
    assert other.totals.cost_usd == pytest.approx(9.0)


async def test_budget_round_trip_and_tenant_isolation(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    fresh = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    assert (fresh.monthly_limit_usd, fresh.monthly_token_limit, fresh.soft_threshold) == (0, 0, 0.8)
    assert not fresh.HasField("update_time")
    assert fresh.month_end_time.ToDatetime() > fresh.month_start_time.ToDatetime()

    wanted = usage_pb2.Budget(
        monthly_limit_usd=250.5,
        monthly_token_limit=5_000_000_000,
        requests_per_minute=120,
        tokens_per_minute=200_000,
        month_to_date_cost_usd=123.0,  # output only: ignored
    )
    set_reply = await stub.SetBudget(usage_pb2.SetBudgetRequest(budget=wanted), metadata=_md(token))
    got = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    assert got == set_reply
    assert (got.monthly_limit_usd, got.monthly_token_limit) == (250.5, 5_000_000_000)
    assert (got.requests_per_minute, got.tokens_per_minute) == (120, 200_000)
    assert got.soft_threshold == 0.8
    assert got.month_to_date_cost_usd == 0
    assert got.HasField("update_time")

    other = await stub.GetBudget(
        usage_pb2.GetBudgetRequest(), metadata=_md(token, tenant_id="globex")
    )
    assert other.monthly_limit_usd == 0 and not other.HasField("update_time")


async def test_set_budget_with_a_mask_changes_only_the_named_limits(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    both = usage_pb2.Budget(monthly_limit_usd=100, requests_per_minute=60, soft_threshold=0.5)
    await stub.SetBudget(usage_pb2.SetBudgetRequest(budget=both), metadata=_md(token))

    # Values outside the mask are ignored, even when set.
    one = usage_pb2.Budget(requests_per_minute=30, monthly_limit_usd=999)
    mask = field_mask_pb2.FieldMask(paths=["requests_per_minute"])
    reply = await stub.SetBudget(
        usage_pb2.SetBudgetRequest(budget=one, update_mask=mask), metadata=_md(token)
    )
    got = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    assert got == reply
    assert (got.monthly_limit_usd, got.requests_per_minute, got.soft_threshold) == (100, 30, 0.5)

    # A named limit sent as 0 is cleared (soft_threshold: back to its default).
    cleared = await stub.SetBudget(
        usage_pb2.SetBudgetRequest(
            budget=usage_pb2.Budget(),
            update_mask=field_mask_pb2.FieldMask(paths=["monthly_limit_usd", "soft_threshold"]),
        ),
        metadata=_md(token),
    )
    assert (cleared.monthly_limit_usd, cleared.requests_per_minute) == (0, 30)
    assert cleared.soft_threshold == 0.8

    # No mask: a full replace, as before masks existed.
    replaced = await stub.SetBudget(
        usage_pb2.SetBudgetRequest(budget=usage_pb2.Budget(tokens_per_minute=5)),
        metadata=_md(token),
    )
    assert (replaced.requests_per_minute, replaced.tokens_per_minute) == (0, 5)

    # A tenant's first budget through a mask: the unnamed limits are "no limit".
    first = await stub.SetBudget(
        usage_pb2.SetBudgetRequest(budget=one, update_mask=mask),
        metadata=_md(token, tenant_id="globex"),
    )
    assert (first.monthly_limit_usd, first.requests_per_minute) == (0, 30)
    assert first.soft_threshold == 0.8


@pytest.mark.parametrize(
    "path", ["month_to_date_cost_usd", "monthly_limit", "budget.soft_threshold"]
)
async def test_set_budget_mask_naming_another_field_is_invalid_and_changes_nothing(
    channel: grpc.aio.Channel, token: TokenFactory, path: str
) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    before = await stub.SetBudget(
        usage_pb2.SetBudgetRequest(budget=usage_pb2.Budget(monthly_limit_usd=7)),
        metadata=_md(token),
    )
    err = await _error(
        stub.SetBudget(
            usage_pb2.SetBudgetRequest(
                budget=usage_pb2.Budget(monthly_limit_usd=1),
                update_mask=field_mask_pb2.FieldMask(paths=["monthly_limit_usd", path]),
            ),
            metadata=_md(token),
        )
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = err.field_violations
    assert violation.field == "update_mask.paths"
    assert path in violation.description
    after = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    assert after == before


async def test_budget_reports_month_to_date_and_forecast(
    server: Server, channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    async with _accountant(server) as accountant:
        await accountant.record(_request(), _completion(600, 400, 3.0))
    before = datetime.now(UTC)
    stub = usage_pb2_grpc.UsageServiceStub(channel)
    reply = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    after = datetime.now(UTC)
    assert reply.month_to_date_cost_usd == pytest.approx(3.0)
    assert reply.month_to_date_tokens == 1000
    # The server's "now" lies between the two readings, which bounds its forecast.
    high, low = forecast(MonthToDate(3.0, 1000), before), forecast(MonthToDate(3.0, 1000), after)
    assert low.cost_usd <= reply.forecast_cost_usd + 1e-9
    assert reply.forecast_cost_usd <= high.cost_usd + 1e-9
    assert low.tokens <= reply.forecast_tokens <= high.tokens
    assert reply.forecast_cost_usd >= reply.month_to_date_cost_usd


def test_forecast_is_month_to_date_over_elapsed_fraction() -> None:
    # 10 of February 2030's 28 days have passed: a month at this rate spends 2.8x as much.
    used = MonthToDate(cost_usd=10.0, tokens=1000)
    result = forecast(used, datetime(2030, 2, 11, tzinfo=UTC))
    assert result.cost_usd == pytest.approx(28.0)
    assert result.tokens == 2800
    # December rolls over into the next year; the first instant does not divide by zero.
    assert forecast(used, datetime(2030, 12, 31, 12, tzinfo=UTC)).cost_usd == pytest.approx(
        10.0 * 31 / 30.5
    )
    assert forecast(MonthToDate(), datetime(2030, 1, 1, tzinfo=UTC)) == MonthToDate()


# --------------------------------------------------------------------------------------------
# Budgets enforced before the call


async def test_token_budget_stops_calls_at_the_limit_not_after(server: Server) -> None:
    await _set_budget(server, monthly_token_limit=1000)
    context = _request().context
    async with _accountant(server) as accountant:
        for _ in range(2):
            await accountant.check(context, "fast", 400)
            await accountant.record(_request(), _completion(300, 100, 0.0))
        # 800 used: a 400-token estimate would end at 1200, so it is refused before it runs...
        with pytest.raises(BudgetExceededError) as caught:
            await accountant.check(context, "fast", 400)
        assert "monthly_token_limit: 800 of 1000" in caught.value.quota_violations[0].description
        # ...while one that fits exactly is let through, and then nothing more is.
        await accountant.check(context, "fast", 200)
        await accountant.record(_request(), _completion(150, 50, 0.0))
        with pytest.raises(BudgetExceededError):
            await accountant.check(context, "fast", 0)
        assert await accountant.month_to_date("acme") == MonthToDate(0.0, 1000)
        # Another tenant is not affected.
        await accountant.check(_request(tenant="globex").context, "fast", 400)


async def test_usd_budget_uses_the_price_estimate(server: Server) -> None:
    await _set_budget(server, monthly_limit_usd=1.0)
    context = _request().context
    prices = {"fast": 0.001, "smart": 0.01}
    async with _accountant(server, price_per_token=prices.__getitem__) as accountant:
        await accountant.check(context, "smart", 90)  # $0.90 fits
        await accountant.record(_request(), _completion(50, 40, 0.9))
        with pytest.raises(BudgetExceededError) as caught:
            await accountant.check(context, "smart", 20)  # $0.20 more would be $1.10
        assert caught.value.quota_violations[0].subject == "tenant:acme"
        await accountant.check(context, "fast", 100)  # $0.10 more is exactly $1.00


async def test_budget_state_is_seeded_from_storage(server: Server) -> None:
    """A restarted replica knows what was spent before it started."""
    await _set_budget(server, monthly_token_limit=500)
    async with _accountant(server) as first:
        await first.record(_request(), _completion(400, 100, 0.0))
    async with _accountant(server) as restarted:
        with pytest.raises(BudgetExceededError):
            await restarted.check(_request().context, "fast", 1)


# --------------------------------------------------------------------------------------------
# Soft threshold


async def test_soft_threshold_alerts_once_per_month(
    server: Server, channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    await _set_budget(server, monthly_limit_usd=10.0, soft_threshold=0.5)
    alerts: list[BudgetAlert] = []

    async def on_alert(alert: BudgetAlert) -> None:
        alerts.append(alert)

    stub = usage_pb2_grpc.UsageServiceStub(channel)
    async with _accountant(server, on_alert=on_alert) as accountant:
        await accountant.record(_request(), _completion(10, 10, 4.0))
        await accountant.flush()
        before = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
        assert not before.soft_threshold_crossed and alerts == []
        for _ in range(3):
            await accountant.record(_request(), _completion(10, 10, 1.5))
    # Another replica (or a restart) crossing again does not raise it a second time.
    async with _accountant(server, on_alert=on_alert) as replica:
        await replica.record(_request(), _completion(10, 10, 1.0))
    assert len(alerts) == 1
    assert alerts[0].tenant_id == "acme"
    assert alerts[0].used.cost_usd == pytest.approx(5.5)
    after = await stub.GetBudget(usage_pb2.GetBudgetRequest(), metadata=_md(token))
    assert after.soft_threshold_crossed
    assert after.HasField("soft_threshold_alert_time")
    assert after.month_to_date_cost_usd == pytest.approx(9.5)


# --------------------------------------------------------------------------------------------
# Errors on the wire

_SERVICE = "test.Gateway"


@pytest.fixture
async def gateway_channel(server: Server) -> AsyncIterator[tuple[grpc.aio.Channel, Server]]:
    """A bespoke service whose handler asks the accountant, behind the real interceptor."""
    accountant = _accountant(server)

    async def call(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
        # Dev mode (no verifier): the caller is tenant "dev".
        await accountant.check(CallContext(tenant_id=current_principal().tenant_id), "fast", 100)
        return empty_pb2.Empty()

    handler = grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=empty_pb2.Empty.SerializeToString,
            )
        },
    )
    grpc_server = grpc.aio.server(
        interceptors=[
            ServicePipeline(
                authenticator=Authenticator(
                    verifier=None, required_roles={f"/{_SERVICE}/Call": "usage.reader"}
                ),
                metrics=Metrics(),
            )
        ]
    )
    grpc_server.add_generic_rpc_handlers((handler,))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan, server
    finally:
        await grpc_server.stop(0)
        await accountant.close()


def _details(error: grpc.aio.AioRpcError) -> tuple[Any, Any]:
    status = status_pb2.Status()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    quota, retry = error_details_pb2.QuotaFailure(), error_details_pb2.RetryInfo()
    found: dict[str, Any] = {}
    for detail in status.details:
        for target in (quota, retry):
            if detail.Is(target.DESCRIPTOR):
                detail.Unpack(target)
                found[target.DESCRIPTOR.name] = target
    return found.get("QuotaFailure"), found.get("RetryInfo")


async def _gateway_error(chan: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    rpc = chan.unary_unary(
        f"/{_SERVICE}/Call",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=empty_pb2.Empty.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc(empty_pb2.Empty())
    return caught.value


async def test_budget_refusal_is_resource_exhausted_with_quota_failure(
    gateway_channel: tuple[grpc.aio.Channel, Server],
) -> None:
    chan, server = gateway_channel
    await _set_budget(server, tenant="dev", monthly_token_limit=50)
    error = await _gateway_error(chan)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    quota, retry = _details(error)
    assert retry is None
    assert [v.subject for v in quota.violations] == ["tenant:dev"]
    description = quota.violations[0].description
    assert "monthly_token_limit: 0 of 50" in description and "resets" in description
    assert ServiceError.from_rpc_error(error).reason == "LLM_BUDGET_EXCEEDED"


async def test_rate_limit_is_resource_exhausted_with_retry_info(
    gateway_channel: tuple[grpc.aio.Channel, Server],
) -> None:
    chan, server = gateway_channel
    await _set_budget(server, tenant="dev", requests_per_minute=1)
    rpc = chan.unary_unary(
        f"/{_SERVICE}/Call",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=empty_pb2.Empty.FromString,
    )
    await rpc(empty_pb2.Empty())
    error = await _gateway_error(chan)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    quota, retry = _details(error)
    assert "requests_per_minute: 1 of 1" in quota.violations[0].description
    delay = retry.retry_delay.ToTimedelta()
    assert timedelta(0) < delay <= timedelta(minutes=1)
    assert ServiceError.from_rpc_error(error).reason == "LLM_RATE_LIMITED"


# --------------------------------------------------------------------------------------------
# Rate limits


class Seconds:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_in_process_limits_slide() -> None:
    clock = Seconds()
    limiter = InProcessRateLimiter(clock=clock)
    rpm = RateLimits(requests_per_minute=2)
    await limiter.acquire("acme", 1, rpm)
    clock.now += 15
    await limiter.acquire("acme", 1, rpm)
    with pytest.raises(RateLimitedError) as caught:
        await limiter.acquire("acme", 1, rpm)
    assert caught.value.retry_after == timedelta(seconds=45)
    await limiter.acquire("globex", 1, rpm)  # per tenant
    clock.now += 45
    await limiter.acquire("acme", 1, rpm)

    tpm = RateLimits(tokens_per_minute=1000)
    await limiter.acquire("t", 600, tpm)
    clock.now += 20
    await limiter.acquire("t", 300, tpm)
    with pytest.raises(RateLimitedError) as caught:
        await limiter.acquire("t", 200, tpm)  # 1100 > 1000: wait for the 600 to leave
    assert caught.value.retry_after == timedelta(seconds=40)
    assert "tokens_per_minute: 900 of 1000" in caught.value.quota_violations[0].description
    await limiter.acquire("t", 100, tpm)  # exactly 1000 fits
    with pytest.raises(RateLimitedError, match="more than the limit"):
        await limiter.acquire("t2", 1001, tpm)


async def test_redis_limiter_is_shared_and_atomic(redis_url: str) -> None:
    replicas = [RedisRateLimiter.from_url(redis_url, window_seconds=60) for _ in range(2)]
    limits = RateLimits(requests_per_minute=5)
    try:
        outcomes = await asyncio.gather(
            *(replicas[i % 2].acquire("acme", 10, limits) for i in range(12)),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, RateLimitedError)]
        assert outcomes.count(None) == 5 and len(refused) == 7
        delays = [r.retry_after for r in refused]
        assert all(d is not None and timedelta(0) < d <= timedelta(minutes=1) for d in delays)
        await replicas[0].acquire("globex", 10, limits)
    finally:
        for limiter in replicas:
            await limiter.close()
            await limiter.close()


async def test_redis_limiter_admits_again_after_the_retry_delay(redis_url: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, window_seconds=0.5)
    limits = RateLimits(requests_per_minute=10, tokens_per_minute=300)
    try:
        await limiter.acquire("acme", 200, limits)
        with pytest.raises(RateLimitedError) as caught:
            await limiter.acquire("acme", 200, limits)
        retry_after = caught.value.retry_after
        assert retry_after is not None and timedelta(0) < retry_after <= timedelta(seconds=0.5)
        await asyncio.sleep(retry_after.total_seconds() + 0.05)
        await limiter.acquire("acme", 200, limits)
    finally:
        await limiter.close()


async def test_replicas_share_month_to_date_through_redis(server: Server, redis_url: str) -> None:
    await _set_budget(server, monthly_token_limit=1000)
    context = _request().context
    async with (
        _accountant(server, redis_url=redis_url) as first,
        _accountant(server, redis_url=redis_url) as second,
    ):
        await second.check(context, "fast", 500)  # seeds: nothing spent yet
        await first.record(_request(), _completion(400, 200, 0.0))
        # Without Redis the second replica would still believe 0 was spent.
        with pytest.raises(BudgetExceededError):
            await second.check(context, "fast", 500)
        await second.record(_request(), _completion(300, 100, 0.0))
        assert await first.month_to_date("acme") == MonthToDate(0.0, 1000)
        assert await second.month_to_date("acme") == MonthToDate(0.0, 1000)


async def test_rate_limits_from_the_budget_through_the_accountant(
    server: Server, redis_url: str
) -> None:
    await _set_budget(server, requests_per_minute=2)
    context = _request().context
    async with _accountant(server, redis_url=redis_url) as accountant:
        await accountant.check(context, "fast", 10)
        await accountant.check(context, "fast", 10)
        with pytest.raises(RateLimitedError):
            await accountant.check(context, "fast", 10)
    async with _accountant(server) as in_process:
        await in_process.check(context, "fast", 10)
        await in_process.check(context, "fast", 10)
        with pytest.raises(RateLimitedError) as caught:
            await in_process.check(context, "fast", 10)
    assert isinstance(caught.value, ResourceExhaustedError)
