"""The Database handle: URLs, lifecycle, SQLite connection setup, exported names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from ai_orchestration import storage
from ai_orchestration.storage import Database, normalize_database_url
from ai_orchestration.storage._migrate import current_revision, head_revision


def test_exported_names_are_pinned_and_sorted() -> None:
    # isort-style, as ruff's RUF022 wants: constants first, then the rest.
    assert storage.__all__ == sorted(storage.__all__, key=lambda n: (not n.isupper(), n))
    assert set(storage.__all__) == {
        "CREATED_FROM",
        "DEFAULT_SOFT_THRESHOLD",
        "MAX_PRIORITY",
        "USAGE_DIMENSIONS",
        "AlertRepository",
        "Backend",
        "Base",
        "BudgetAlertRecord",
        "BudgetLimits",
        "Claimant",
        "Claimed",
        "Created",
        "Clock",
        "CustomerInsightRepository",
        "CustomerVectors",
        "Database",
        "DeliveryLedger",
        "EncodedScoreRows",
        "IdempotencyRecord",
        "IdempotencyRepository",
        "InteractionRepository",
        "InvalidPageTokenError",
        "JsonValue",
        "LeadOutcomeRepository",
        "LeadScoreRepository",
        "NamedClaim",
        "NewLlmCall",
        "PromptTemplateRepository",
        "RetrievalHit",
        "RunChange",
        "RunRepository",
        "ScoringModelRepository",
        "StoredBudget",
        "StoredDelivery",
        "StoredPromptExperiment",
        "StoredPromptTemplate",
        "TenantSettingsRepository",
        "UTCDateTime",
        "UsageDimension",
        "UsageGroup",
        "UsagePage",
        "UsageRepository",
        "UsageTotals",
        "compute_request_digest",
        "connect_inline",
        "customer_digest",
        "encode_score_rows",
        "normalize_database_url",
        "sqlite_file_path",
        "utc_now",
    }
    for name in storage.__all__:
        assert getattr(storage, name) is not None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/crm", "postgresql+asyncpg://u:p@db:5432/crm"),
        ("postgres://u@db/crm", "postgresql+asyncpg://u@db/crm"),
        ("postgresql+asyncpg://u@/crm?host=/run/pg", "postgresql+asyncpg://u@/crm?host=/run/pg"),
    ],
)
def test_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == make_url(expected)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://u@db/crm", "unsupported database backend 'mysql'"),
        ("postgresql+psycopg2://u@db/crm", "unsupported driver 'psycopg2'"),
        ("sqlite+pysqlite:///x.db", "unsupported driver 'pysqlite'"),
        ("not a url", "cannot parse database URL"),
    ],
)
def test_unsupported_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        normalize_database_url(url)


async def test_close_is_idempotent_and_blocks_further_use(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/x.db")
    assert not db.closed
    await db.close()
    await db.close()
    assert db.closed
    with pytest.raises(RuntimeError, match="closed"):
        _ = db.sessionmaker
    with pytest.raises(RuntimeError, match="closed"):
        await db.migrate()


async def test_async_with_closes(tmp_path: Path) -> None:
    async with Database.from_url(f"sqlite:///{tmp_path}/x.db") as db:
        assert db.backend == "sqlite"
    assert db.closed


async def test_sqlite_creates_parent_directories_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "service.db"
    async with Database.from_url(f"sqlite:///{path}") as db:
        assert path.parent.is_dir()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            # SQLite's busy handler would sleep on the event loop; the connection retries instead.
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 0
    assert path.is_file()


async def test_sqlite_rolls_back_ddl(tmp_path: Path) -> None:
    # sqlite3's legacy mode would autocommit the CREATE TABLE; migrations rely on it not doing so.
    async with Database.from_url(f"sqlite:///{tmp_path}/x.db") as db, db.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("CREATE TABLE scratch (id INTEGER)"))
        await transaction.rollback()
        tables = await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        assert "scratch" not in set(tables.scalars())


async def test_migrations_of_different_databases_can_run_concurrently(tmp_path: Path) -> None:
    # Alembic keeps the running migration in module globals; interleaved upgrades must not clash.
    databases = [Database.from_url(f"sqlite:///{tmp_path}/db{i}.db") for i in range(4)]
    try:
        outcomes = await asyncio.gather(*(db.migrate() for db in databases), return_exceptions=True)
        assert outcomes == [None] * len(databases)
        for db in databases:
            async with db.engine.connect() as conn:
                assert await conn.run_sync(current_revision) == head_revision()
    finally:
        await asyncio.gather(*(db.close() for db in databases))


async def test_plain_postgres_url_connects(postgres_url: str) -> None:
    async with Database.from_url(postgres_url.replace("+asyncpg", "")) as db:
        assert db.backend == "postgresql"
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_database()"))).scalar_one() == (
                make_url(postgres_url).database
            )
