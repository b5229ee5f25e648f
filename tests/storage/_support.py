"""Test doubles shared by the storage tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from ai_orchestration.storage import Database
from ai_orchestration.storage._sqlite import SQLITE_BEGIN_OPTION


async def write_past_a_held_lock(db: Database, write: Callable[[], Awaitable[object]]) -> None:
    """Runs ``write`` while another task's transaction, which inserted 1 into table ``t``,
    holds SQLite's write lock: ``write`` must wait for it, and the holder must still get to
    commit (which it can only do if the loop is not blocked meanwhile)."""
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold_the_write_lock() -> None:
        async with db.engine.connect() as plain:
            connection = await plain.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            async with connection.begin():
                await connection.execute(text("INSERT INTO t (v) VALUES (1)"))
                locked.set()
                await release.wait()  # suspended inside its transaction

    holder = asyncio.create_task(hold_the_write_lock())
    await locked.wait()
    waiter = asyncio.ensure_future(write())
    await asyncio.sleep(0.1)
    assert not waiter.done()  # it waits for the lock...
    release.set()  # ...which the holder can only give back if the loop still runs
    await asyncio.wait_for(asyncio.gather(holder, waiter), 5)


class FakeClock:
    """A settable clock for repositories, starting at a fixed instant in UTC."""

    def __init__(self, start: datetime = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move time forward by ``delta``."""
        self.now += delta
