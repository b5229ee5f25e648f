"""Migrations: idempotent, safe when several processes start at once, and matching the models."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning

import ai_orchestration
from ai_orchestration.storage import Base, Database, TenantSettingsRepository
from ai_orchestration.storage._insight_models import include_in_comparison
from ai_orchestration.storage._migrate import current_revision, head_revision

TABLES = {
    "alembic_version",
    "customer_erasures",
    "customer_insights",
    "insight_alert_logs",
    "insight_alerts",
    "insight_interactions",
    "insight_passages",
    "idempotency_records",
    "lead_outcomes",
    "lead_scores",
    "llm_budget_alerts",
    "llm_budgets",
    "llm_calls",
    "prompt_template_experiments",
    "prompt_templates",
    "scoring_models",
    "tenant_settings",
    "workflow_deliveries",
    "workflow_run_events",
    "workflow_runs",
}
_WRITES = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_REPO_ROOT = Path(ai_orchestration.__file__).resolve().parents[1]

# A replica starting up: connect, wait for the starting gun on stdin, migrate.
_MIGRATING_PROCESS = """
import asyncio, sys
from ai_orchestration.storage import Database

async def main() -> None:
    async with Database.from_url(sys.argv[1]) as db:
        print("ready", flush=True)
        sys.stdin.readline()
        await db.migrate()

asyncio.run(main())
"""


async def _revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(current_revision)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    # SQLite's FTS5 table and its shadow tables; PostgreSQL keeps full text in a column.
    return {name for name in names if not name.startswith("insight_passages_fts")}


async def test_fresh_database_migrates_to_head(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        assert await _revision(db) is None
        await db.migrate()
        assert await _revision(db) == head_revision()
        assert await _tables(db) == TABLES


async def test_second_migrate_writes_nothing_and_keeps_data(database: Database) -> None:
    settings = TenantSettingsRepository(database=database)
    await settings.set("tenant-a", "greeting", "hello")
    statements: list[str] = []

    def record(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        await database.migrate()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)

    assert statements, "the listener saw no SQL: the check below would prove nothing"
    assert [s for s in statements if _WRITES.match(s)] == []
    assert await _revision(database) == head_revision()
    assert await settings.get("tenant-a", "greeting") == "hello"


async def test_concurrent_migrate_from_several_engines_in_one_process(database_url: str) -> None:
    databases = [Database.from_url(database_url) for _ in range(4)]
    try:
        # return_exceptions: let every migration finish before the engines are disposed.
        outcomes = await asyncio.gather(*(db.migrate() for db in databases), return_exceptions=True)
        assert outcomes == [None] * len(databases)
        for db in databases:
            assert await _revision(db) == head_revision()
        assert await _tables(databases[0]) == TABLES
    finally:
        await asyncio.gather(*(db.close() for db in databases))


async def test_concurrent_migrate_from_several_processes(database_url: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATING_PROCESS,
            database_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
    # Start all upgrades at the same moment, after the slow imports are done.
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate(b"go\n") for process in processes)), 60
    )
    failures = [
        err.decode()
        for process, (_, err) in zip(processes, outputs, strict=True)
        if process.returncode
    ]
    assert failures == []
    async with Database.from_url(database_url) as db:
        assert await _revision(db) == head_revision()
        assert await _tables(db) == TABLES


async def test_models_match_migrated_schema(database: Database) -> None:
    def diff(conn: Connection) -> list[Any]:
        opts = {"compare_type": True, "include_object": include_in_comparison}
        context = MigrationContext.configure(conn, opts=opts)
        with warnings.catch_warnings():
            # SQLAlchemy has no pgvector type; the column is left out of the comparison anyway.
            warnings.filterwarnings("ignore", "Did not recognize type 'vector'", SAWarning)
            return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
