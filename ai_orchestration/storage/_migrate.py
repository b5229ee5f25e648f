"""Programmatic Alembic: upgrade to head on a connection we own, safe under concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ai_orchestration.storage._sqlite import SQLITE_BEGIN_OPTION

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's ``script_location``: ``env.py`` and ``versions/``."""

# Arbitrary but fixed 64-bit key (ASCII "aiorchmg"): every replica must contend on the same one.
_PG_MIGRATION_LOCK_KEY = 0x6169_6F72_6368_6D67

# Alembic keeps the running migration in module globals (``alembic.context``, ``alembic.op``), and
# run_sync yields to the event loop on every query, so two upgrades interleaving in one process
# (even on different databases) corrupt each other. This lock guards that process-wide state; a
# threading lock because it must hold across event loops and threads.
_ALEMBIC_STATE_LOCK = threading.Lock()
_LOCK_POLL_SECONDS = 0.02


def alembic_config() -> Config:
    """An Alembic config built in code, so no ``alembic.ini`` has to ship with the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at, ``None`` before the first one."""
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the database behind ``engine`` to head; a no-op when it is already there.

    The whole upgrade runs in one transaction that first takes a database-wide lock, so replicas
    starting together serialise: the first one migrates, the others then find the database at
    head. PostgreSQL gets a transaction-scoped advisory lock (released by commit or rollback, even
    if the process dies); SQLite gets ``BEGIN IMMEDIATE``, which takes the single writer lock up
    front instead of failing on lock upgrade.
    """
    async with _alembic_state_lock(), engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_upgrade_to_head)


@asynccontextmanager
async def _alembic_state_lock() -> AsyncIterator[None]:
    # Poll rather than block a worker thread on acquire(): a cancelled waiter then can never
    # acquire the lock late and leave it held. asyncio primitives are bound to one event loop.
    while not _ALEMBIC_STATE_LOCK.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(_LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _ALEMBIC_STATE_LOCK.release()


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    # env.py runs on this connection, inside our transaction, rather than opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
