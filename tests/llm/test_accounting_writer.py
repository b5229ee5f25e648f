"""The accountant's write-behind of ``llm_calls`` rows, on real SQLite and PostgreSQL.

INSERT statements are counted by a SQLAlchemy ``after_cursor_execute`` listener on the real
engine and failed ones by a ``handle_error`` listener. Storage failures are real: the
``llm_calls`` table is renamed away under the running writer and renamed back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from sqlalchemy import event

from ai_orchestration.llm._accounting import MonthToDate, UsageAccountant
from ai_orchestration.llm._types import (
    BudgetExceededError,
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    Usage,
)
from ai_orchestration.llm._usage_writer import UsageWriter, WriteBehindPolicy
from ai_orchestration.storage import BudgetLimits, Database, NewLlmCall, UsageRepository

NOW = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
MONTH = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))
NEVER = 3600.0
"""A flush interval no test lives to see: only full batches, flush() and close() write."""
WAIT_STEPS = 400
"""Polls (of 25 ms) a test waits for the background writer before it gives up."""


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/usage.db"
    else:
        url = request.getfixturevalue("postgres_database_url")
    async with Database.from_url(url) as db:
        await db.migrate()
        yield db


@dataclass
class Statements:
    """What the real engine executed against ``llm_calls``."""

    rows: list[int] = field(default_factory=list)
    """Rows of each successful INSERT statement (one parameter set per row)."""
    failed_inserts: int = 0
    """INSERTs the database or driver refused."""


@pytest.fixture
def statements(database: Database) -> Iterator[Statements]:
    seen = Statements()
    engine = database.engine.sync_engine

    def after(**kw: Any) -> None:
        if str(kw["statement"]).lstrip().upper().startswith("INSERT INTO LLM_CALLS"):
            seen.rows.append(len(kw["parameters"]) if kw["executemany"] else 1)

    def failed(context: Any) -> None:
        if str(context.statement or "").lstrip().upper().startswith("INSERT INTO LLM_CALLS"):
            seen.failed_inserts += 1

    event.listen(engine, "after_cursor_execute", after, named=True)
    event.listen(engine, "handle_error", failed)
    yield seen
    event.remove(engine, "after_cursor_execute", after)
    event.remove(engine, "handle_error", failed)


def _request(tenant: str = "acme") -> CompletionRequest:
    return CompletionRequest(
        model="fast",
        messages=(ChatMessage("user", "hello"),),
        context=CallContext(tenant_id=tenant, run_id="run-1", step="draft"),
    )


def _completion(prompt: int = 10, completion: int = 5, cost: float = 0.01) -> Completion:
    return Completion(
        text="hi",
        model="fast",
        deployment="primary",
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost),
    )


def _accountant(database: Database, **policy: Any) -> UsageAccountant:
    return UsageAccountant(
        repository=UsageRepository(database=database),
        clock=lambda: NOW,
        write_behind=WriteBehindPolicy(**policy),
    )


async def _stored(database: Database, tenant: str = "acme") -> int:
    totals = await UsageRepository(database=database).totals(tenant, start=MONTH[0], end=MONTH[1])
    return totals.calls


async def _rename(database: Database, old: str, new: str) -> None:
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


async def _until(condition: Any, what: str) -> None:
    """Poll ``condition()`` (sync or async) until true, at most WAIT_STEPS times."""
    for _ in range(WAIT_STEPS):
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


# --------------------------------------------------------------------------------------------
# The batch method


async def test_add_calls_stores_several_tenants_with_one_insert(
    database: Database, statements: Statements
) -> None:
    repository = UsageRepository(database=database)
    rows = [
        ("acme", NewLlmCall(called_at=NOW, model="fast", deployment="a", prompt_tokens=3)),
        ("acme", NewLlmCall(called_at=NOW, model="smart", deployment="b", cost_usd=0.5)),
        ("globex", NewLlmCall(called_at=NOW, model="fast", deployment="a", completion_tokens=7)),
    ]
    ids = await repository.add_calls(rows)
    assert len(set(ids)) == 3
    assert statements.rows == [3]
    acme = await repository.totals("acme", start=MONTH[0], end=MONTH[1])
    globex = await repository.totals("globex", start=MONTH[0], end=MONTH[1])
    assert (acme.calls, acme.prompt_tokens, acme.cost_usd) == (2, 3, 0.5)
    assert (globex.calls, globex.completion_tokens) == (1, 7)

    # One invalid row refuses the whole batch before anything is sent.
    naive = NewLlmCall(called_at=NOW.replace(tzinfo=None), model="fast", deployment="a")
    with pytest.raises(ValueError, match="called_at"):
        await repository.add_calls([rows[0], ("acme", naive)])
    assert await repository.add_calls([]) == []
    assert statements.rows == [3]


# --------------------------------------------------------------------------------------------
# Batching


async def test_many_records_become_few_inserts(database: Database, statements: Statements) -> None:
    tenants = ("acme", "globex", "initech")
    async with _accountant(database, batch_rows=100, flush_interval_seconds=NEVER) as accountant:
        for number in range(250):
            await accountant.record(_request(tenants[number % 3]), _completion())
        # Two full batches go out by themselves; the last 50 wait for a batch, flush or close.
        await _until(lambda: accountant.writer.waiting == 50, "the two full batches")
        assert statements.rows == [100, 100]
        await accountant.flush()
        assert accountant.writer.waiting == 0
    assert statements.rows == [100, 100, 50]
    assert [await _stored(database, tenant) for tenant in tenants] == [84, 83, 83]


async def test_a_few_rows_are_written_after_the_interval(
    database: Database, statements: Statements
) -> None:
    async with _accountant(database, flush_interval_seconds=0.05) as accountant:
        for _ in range(3):
            await accountant.record(_request(), _completion())
        # No flush(): the interval alone gets them stored, in one INSERT.
        await _until(lambda: _stored(database), "the interval's write")
        assert await _stored(database) == 3
        assert statements.rows == [3]


async def test_budgets_count_calls_before_their_rows_are_stored(database: Database) -> None:
    await UsageRepository(database=database).set_budget(
        "acme", BudgetLimits(monthly_token_limit=40)
    )
    async with _accountant(database, flush_interval_seconds=NEVER) as accountant:
        await accountant.check(_request().context, "fast", 15)
        await accountant.record(_request(), _completion(10, 5))
        await accountant.check(_request().context, "fast", 15)
        await accountant.record(_request(), _completion(10, 5))
        assert await _stored(database) == 0  # nothing written yet...
        assert await accountant.month_to_date("acme") == MonthToDate(0.02, 30)
        with pytest.raises(BudgetExceededError):  # ...and still the budget holds
            await accountant.check(_request().context, "fast", 15)


async def test_replicas_on_redis_see_spend_before_it_is_stored(
    database: Database, redis_url: str
) -> None:
    await UsageRepository(database=database).set_budget(
        "acme", BudgetLimits(monthly_token_limit=40)
    )
    prefix = f"aio:test:{id(database)}"

    def replica() -> UsageAccountant:
        return UsageAccountant(
            repository=UsageRepository(database=database),
            redis_url=redis_url,
            key_prefix=prefix,
            clock=lambda: NOW,
            write_behind=WriteBehindPolicy(flush_interval_seconds=NEVER),
        )

    async with replica() as first, replica() as second:
        await second.check(_request().context, "fast", 30)
        await first.record(_request(), _completion(20, 10))
        assert await _stored(database) == 0
        with pytest.raises(BudgetExceededError):
            await second.check(_request().context, "fast", 30)
    assert await _stored(database) == 1


async def test_a_call_that_used_nothing_is_stored_without_touching_the_totals(
    database: Database, redis_url: str
) -> None:
    prefix = f"aio:test:{id(database)}:nothing"
    hit = Completion(text="hi", model="fast", deployment="primary", usage=Usage(), cached="exact")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with UsageAccountant(
            repository=UsageRepository(database=database),
            redis_url=redis_url,
            key_prefix=prefix,
            clock=lambda: NOW,
        ) as accountant:
            await accountant.record(_request(), hit)
            await accountant.flush()
            assert await client.keys(f"{prefix}:*") == []  # no month-to-date round trips
            await accountant.record(_request(), _completion(10, 5))
            assert len(await client.keys(f"{prefix}:*")) == 2  # usd and tokens
        totals = await UsageRepository(database=database).totals(
            "acme", start=MONTH[0], end=MONTH[1]
        )
        assert (totals.calls, totals.cached_calls, totals.tokens) == (2, 1, 15)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------------------------
# close()


async def test_close_stores_everything_queued(database: Database, statements: Statements) -> None:
    accountant = _accountant(database, batch_rows=100, flush_interval_seconds=NEVER)
    for _ in range(42):
        await accountant.record(_request(), _completion())
    assert await _stored(database) == 0
    assert accountant.writer.waiting == 42
    await accountant.close()
    assert await _stored(database) == 42
    assert statements.rows == [42]
    await accountant.close()  # safe twice
    await accountant.flush()  # and a no-op after close
    with pytest.raises(RuntimeError, match="closed"):
        await accountant.writer.put("acme", NewLlmCall(called_at=NOW, model="m", deployment="d"))
    assert await _stored(database) == 42


async def test_close_gives_up_after_its_timeout_and_says_what_is_lost(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = UsageWriter(
        repository=UsageRepository(database=database),
        policy=WriteBehindPolicy(
            flush_interval_seconds=0.01, max_retry_delay_seconds=0.02, close_timeout_seconds=0.3
        ),
    )
    await _rename(database, "llm_calls", "llm_calls_away")
    for tokens in (3, 4):
        await writer.put(
            "acme",
            NewLlmCall(
                called_at=NOW, model="m", deployment="d", cost_usd=1.0, prompt_tokens=tokens
            ),
        )
    with caplog.at_level(logging.ERROR, logger="ai_orchestration.llm._usage_writer"):
        await writer.close()
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lost) == 1
    assert "2 row(s)" in lost[0] and "7 tokens" in lost[0] and "$2.000000" in lost[0]
    assert "acme" in lost[0]


# --------------------------------------------------------------------------------------------
# Failures and back-pressure


async def test_a_failed_write_is_retried_until_the_rows_arrive(
    database: Database, statements: Statements, caplog: pytest.LogCaptureFixture
) -> None:
    policy = {"flush_interval_seconds": 0.01, "max_retry_delay_seconds": 0.05}
    async with _accountant(database, **policy) as accountant:
        for tenant in ("acme", "globex"):  # seeds their months from storage
            await accountant.record(_request(tenant), _completion())
        await accountant.flush()
        await _rename(database, "llm_calls", "llm_calls_away")
        try:
            for tenant in ("acme", "globex") * 5:
                await accountant.record(_request(tenant), _completion())
            await _until(lambda: accountant.writer.failed_writes >= 3, "three failed writes")
            assert statements.failed_inserts >= 3
            assert accountant.writer.waiting == 10
        finally:
            await _rename(database, "llm_calls_away", "llm_calls")
        await accountant.flush()
        assert accountant.writer.waiting == 0
    # Every row once: none lost, none written twice by the retries.
    assert (await _stored(database), await _stored(database, "globex")) == (6, 6)
    warnings = [r for r in caplog.records if r.name.endswith("_usage_writer")]
    assert any("retrying" in r.getMessage() for r in warnings)


async def test_a_full_queue_makes_record_wait(database: Database, statements: Statements) -> None:
    policy = {
        "batch_rows": 2,
        "max_queued_rows": 4,
        "flush_interval_seconds": 0.01,
        "max_retry_delay_seconds": 0.05,
    }
    async with _accountant(database, **policy) as accountant:
        await accountant.record(_request(), _completion())
        await accountant.flush()
        await _rename(database, "llm_calls", "llm_calls_away")
        try:
            for _ in range(4):
                await accountant.record(_request(), _completion())
            fifth = asyncio.create_task(accountant.record(_request(), _completion()))
            # The writer keeps failing and retrying; the fifth call cannot get in meanwhile.
            seen = statements.failed_inserts
            await _until(lambda: statements.failed_inserts >= seen + 3, "three more failures")
            assert not fifth.done()
            assert accountant.writer.waiting == 4
        finally:
            await _rename(database, "llm_calls_away", "llm_calls")
        async with asyncio.timeout(30):
            await fifth
        await accountant.flush()
    assert await _stored(database) == 6
    assert max(statements.rows) <= 2


async def test_a_row_the_database_refuses_does_not_block_the_others(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = UsageWriter(
        repository=UsageRepository(database=database),
        policy=WriteBehindPolicy(batch_rows=10, flush_interval_seconds=NEVER),
    )
    try:
        for tokens in (1, 2**64, 3):  # beyond any integer column either backend has
            await writer.put(
                "acme", NewLlmCall(called_at=NOW, model="m", deployment="d", prompt_tokens=tokens)
            )
        async with asyncio.timeout(30):
            await writer.flush()
    finally:
        await writer.close()
    totals = await UsageRepository(database=database).totals("acme", start=MONTH[0], end=MONTH[1])
    assert (totals.calls, totals.prompt_tokens) == (2, 4)
    assert writer.rejected_rows == 1
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1 and str(2**64) in refused[0].getMessage()


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        WriteBehindPolicy(batch_rows=0)
    with pytest.raises(ValueError, match="batch_rows"):
        WriteBehindPolicy(batch_rows=1001)
    with pytest.raises(ValueError, match="max_queued_rows"):
        WriteBehindPolicy(batch_rows=10, max_queued_rows=5)
    with pytest.raises(ValueError, match="positive"):
        WriteBehindPolicy(flush_interval_seconds=0)
    assert WriteBehindPolicy().batch_rows == 100


async def test_a_bad_row_is_refused_on_the_callers_path(database: Database) -> None:
    naive = UsageAccountant(
        repository=UsageRepository(database=database), clock=lambda: NOW.replace(tzinfo=None)
    )
    async with naive, _accountant(database) as accountant:
        with pytest.raises(ValueError):
            await naive.record(_request(), _completion())
        with pytest.raises(ValueError):
            await accountant.record(_request(tenant=""), _completion())
        assert accountant.writer.waiting == naive.writer.waiting == 0
