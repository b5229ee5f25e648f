"""UsageRepository conformance: the same grouping, budgets and alerts on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ai_orchestration.storage import (
    BudgetAlertRecord,
    BudgetLimits,
    Database,
    InvalidPageTokenError,
    NewLlmCall,
    UsageGroup,
    UsageRepository,
    UsageTotals,
)
from tests.storage._support import FakeClock

TENANT = "tenant-a"
DAY1 = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
DAY2 = datetime(2030, 1, 3, 23, 59, 59, tzinfo=UTC)
START = datetime(2030, 1, 1, tzinfo=UTC)
END = datetime(2030, 2, 1, tzinfo=UTC)


@pytest.fixture
def repo(database: Database, clock: FakeClock) -> UsageRepository:
    return UsageRepository(database=database, clock=clock)


def _call(at: datetime, **fields: object) -> NewLlmCall:
    values: dict[str, object] = {
        "model": "fast",
        "deployment": "openai/gpt-4o-mini",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cost_usd": 0.25,
    }
    values.update(fields)
    return NewLlmCall(called_at=at, **values)  # type: ignore[arg-type]


async def _seed(repo: UsageRepository) -> None:
    calls = [
        _call(DAY1, run_id="r1", step="qualify", template="summary", template_version=1),
        _call(DAY1, run_id="r1", step="qualify", template="summary", template_version=2),
        _call(DAY1, run_id="r1", step="draft", cached=True, cost_usd=0.0),
        _call(
            DAY2,
            model="smart",
            deployment="anthropic/claude",
            run_id="r2",
            prompt_tokens=1000,
            completion_tokens=500,
            cost_usd=2.5,
        ),
        _call(DAY2, deployment="fallback/template", degraded=True, cost_usd=0.0),
        _call(DAY2, truncated=True, prompt_tokens=7, completion_tokens=3, cost_usd=0.125),
    ]
    for call in calls:
        await repo.add_call(TENANT, call)
    # Outside the window and another tenant's: must never be counted.
    await repo.add_call(TENANT, _call(datetime(2030, 2, 1, tzinfo=UTC)))
    await repo.add_call(TENANT, _call(datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC)))
    await repo.add_call("tenant-b", _call(DAY1, cost_usd=99.0))


async def test_totals_without_grouping(repo: UsageRepository) -> None:
    await _seed(repo)
    page = await repo.aggregate(TENANT, start=START, end=END)
    expected = UsageTotals(
        calls=6,
        prompt_tokens=100 * 4 + 1000 + 7,
        completion_tokens=20 * 4 + 500 + 3,
        cost_usd=0.25 * 2 + 2.5 + 0.125,
        cached_calls=1,
        degraded_calls=1,
        truncated_calls=1,
    )
    assert page.totals == expected
    assert page.groups == (UsageGroup(totals=expected),)
    assert await repo.totals(TENANT, start=START, end=END) == expected


async def test_empty_window_is_zero(repo: UsageRepository) -> None:
    page = await repo.aggregate(TENANT, start=START, end=END, group_by=["model"])
    assert page.groups == ()
    assert page.totals == UsageTotals()
    assert (await repo.aggregate(TENANT, start=START, end=END)).groups == (
        UsageGroup(totals=UsageTotals()),
    )


async def test_group_by_model_and_day(repo: UsageRepository) -> None:
    await _seed(repo)
    page = await repo.aggregate(TENANT, start=START, end=END, group_by=["day", "model"])
    keys = [(g.day, g.model, g.totals.calls, g.totals.cost_usd) for g in page.groups]
    assert keys == [
        ("2030-01-02", "fast", 3, 0.5),
        ("2030-01-03", "fast", 2, 0.125),
        ("2030-01-03", "smart", 1, 2.5),
    ]
    assert sum(g.totals.calls for g in page.groups) == page.totals.calls == 6


async def test_group_by_template_keeps_versions_apart(repo: UsageRepository) -> None:
    await _seed(repo)
    page = await repo.aggregate(TENANT, start=START, end=END, group_by=["template"])
    assert [(g.template, g.template_version, g.totals.calls) for g in page.groups] == [
        ("", 0, 4),
        ("summary", 1, 1),
        ("summary", 2, 1),
    ]


async def test_group_by_run_step_deployment(repo: UsageRepository) -> None:
    await _seed(repo)
    page = await repo.aggregate(
        TENANT, start=START, end=END, group_by=["run", "step", "deployment"]
    )
    rows = {(g.run_id, g.step, g.deployment): g.totals for g in page.groups}
    assert rows[("r1", "qualify", "openai/gpt-4o-mini")].calls == 2
    assert rows[("r1", "draft", "openai/gpt-4o-mini")].cached_calls == 1
    assert rows[("", "", "fallback/template")].degraded_calls == 1
    assert rows[("r2", "", "anthropic/claude")].prompt_tokens == 1000
    assert all(g.model == "" and g.day == "" for g in page.groups)


async def test_pages_cover_every_group_once(repo: UsageRepository) -> None:
    for day in range(1, 8):
        await repo.add_call(TENANT, _call(datetime(2030, 1, day, tzinfo=UTC)))
    days: list[str] = []
    token = ""
    for _ in range(10):
        page = await repo.aggregate(
            TENANT, start=START, end=END, group_by=["day"], page_size=3, page_token=token
        )
        days.extend(g.day for g in page.groups)
        assert page.totals.calls == 7
        token = page.next_page_token
        if not token:
            break
    assert days == [f"2030-01-0{d}" for d in range(1, 8)]


async def test_page_token_is_bound_to_its_query(repo: UsageRepository) -> None:
    for day in range(1, 4):
        await repo.add_call(TENANT, _call(datetime(2030, 1, day, tzinfo=UTC)))
    page = await repo.aggregate(TENANT, start=START, end=END, group_by=["day"], page_size=1)
    assert page.next_page_token
    with pytest.raises(InvalidPageTokenError):
        await repo.aggregate(
            TENANT,
            start=START,
            end=END,
            group_by=["model"],
            page_size=1,
            page_token=page.next_page_token,
        )
    with pytest.raises(InvalidPageTokenError):
        await repo.aggregate(
            "tenant-b", start=START, end=END, group_by=["day"], page_token=page.next_page_token
        )
    with pytest.raises(InvalidPageTokenError):
        await repo.aggregate(TENANT, start=START, end=END, group_by=["day"], page_token="garbage")


@pytest.mark.parametrize("group_by", [["model", "model"], ["tenant"]])
async def test_bad_dimensions_are_refused(repo: UsageRepository, group_by: list[str]) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await repo.aggregate(TENANT, start=START, end=END, group_by=group_by)  # type: ignore[arg-type]


async def test_naive_times_are_refused(repo: UsageRepository) -> None:
    with pytest.raises(ValueError, match="naive"):
        await repo.add_call(TENANT, _call(datetime(2030, 1, 1)))


async def test_budget_round_trip_and_isolation(repo: UsageRepository, clock: FakeClock) -> None:
    assert await repo.get_budget(TENANT) is None
    limits = BudgetLimits(
        monthly_limit_usd=12.5,
        monthly_token_limit=3_000_000_000,
        soft_threshold=0.5,
        requests_per_minute=60,
        tokens_per_minute=90_000,
    )
    stored = await repo.set_budget(TENANT, limits)
    assert stored.updated_at == clock.now
    assert await repo.get_budget(TENANT) == stored
    assert await repo.get_budget("tenant-b") is None

    clock.advance(timedelta(hours=1))
    replaced = await repo.set_budget(TENANT, BudgetLimits(monthly_limit_usd=1.0))
    fetched = await repo.get_budget(TENANT)
    assert fetched == replaced
    assert fetched is not None and fetched.limits.requests_per_minute == 0
    assert fetched.updated_at == clock.now


async def test_set_budget_only_changes_the_named_limits(
    repo: UsageRepository, clock: FakeClock
) -> None:
    # A first budget takes every field from the limits given, named or not.
    first = await repo.set_budget(
        TENANT,
        BudgetLimits(monthly_limit_usd=5.0, requests_per_minute=60),
        only=["requests_per_minute"],
    )
    assert first.limits == BudgetLimits(monthly_limit_usd=5.0, requests_per_minute=60)

    clock.advance(timedelta(minutes=1))
    changed = await repo.set_budget(
        TENANT,
        BudgetLimits(requests_per_minute=30, soft_threshold=0.5, tokens_per_minute=7),
        only=["requests_per_minute", "soft_threshold"],
    )
    assert changed.limits == BudgetLimits(
        monthly_limit_usd=5.0, requests_per_minute=30, soft_threshold=0.5
    )
    assert await repo.get_budget(TENANT) == changed
    assert changed.updated_at == clock.now

    with pytest.raises(ValueError, match="monthly_limit"):
        await repo.set_budget(TENANT, BudgetLimits(), only=["monthly_limit"])


@pytest.mark.parametrize(
    "fields",
    [{"soft_threshold": 0.0}, {"soft_threshold": 1.5}, {"monthly_limit_usd": -1.0}],
)
def test_invalid_limits_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BudgetLimits(**fields)  # type: ignore[arg-type]


async def test_alert_is_stored_once_per_month(repo: UsageRepository, clock: FakeClock) -> None:
    alert = BudgetAlertRecord(
        month="2030-01", cost_usd=8.0, tokens=10, limits=BudgetLimits(monthly_limit_usd=10.0)
    )
    outcomes = await asyncio.gather(*(repo.add_alert(TENANT, alert) for _ in range(5)))
    assert sorted(outcomes) == [False, False, False, False, True]
    stored = await repo.get_alert(TENANT, "2030-01")
    assert stored is not None
    assert (stored.cost_usd, stored.tokens, stored.raised_at) == (8.0, 10, clock.now)
    assert stored.limits.monthly_limit_usd == 10.0
    assert await repo.get_alert(TENANT, "2030-02") is None
    assert await repo.get_alert("tenant-b", "2030-01") is None
    assert await repo.add_alert(TENANT, BudgetAlertRecord(month="2030-02", cost_usd=0, tokens=0))
