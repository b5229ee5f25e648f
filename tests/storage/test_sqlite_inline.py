"""SQLite statements on the event loop's thread: waiting for a lock never blocks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ai_orchestration.storage import Database, _sqlite_inline
from ai_orchestration.storage._sqlite import SQLITE_BEGIN_OPTION
from ai_orchestration.storage._sqlite_inline import InlineConnection, connect_inline
from tests.storage._support import write_past_a_held_lock


async def _ticks_during(work: asyncio.Future[object] | asyncio.Task[object]) -> int:
    """How many 10 ms ticks the loop ran while ``work`` was pending."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def _write(db: Database, value: int) -> None:
    async with db.engine.connect() as plain:
        conn = await plain.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        async with conn.begin():
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})


async def test_a_writer_waits_for_another_tasks_transaction_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    async with Database.from_url(f"sqlite:///{tmp_path}/x.db") as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        await write_past_a_held_lock(db, lambda: _write(db, 2))
        async with db.engine.connect() as conn:
            values = (await conn.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all()
        assert values == [1, 2]


async def test_a_lock_held_by_another_process_is_waited_for_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.from_url(f"sqlite:///{path}") as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        locked, done = threading.Event(), threading.Event()

        def other_writer() -> None:  # a plain sqlite3 connection, as another process has
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(0.3)
            other.execute("COMMIT")
            other.close()
            done.set()

        thread = threading.Thread(target=other_writer)
        thread.start()
        await asyncio.to_thread(locked.wait, 5)
        write = asyncio.create_task(_write(db, 7))
        ticks = await _ticks_during(write)
        await write
        thread.join()
        assert done.is_set()
        assert ticks >= 10  # the loop ran (10 ms ticks) for most of the 300 ms wait


async def test_busy_past_the_timeout_raises_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_inline, "BUSY_TIMEOUT_SECONDS", 0.2)
    path = tmp_path / "x.db"
    async with Database.from_url(f"sqlite:///{path}") as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                await _write(db, 1)
            assert 0.2 <= time.monotonic() - started < 3
        finally:
            other.execute("ROLLBACK")
            other.close()
        await _write(db, 2)  # the connection is usable again once the lock is free


async def test_other_errors_are_raised_at_once(tmp_path: Path) -> None:
    connection = await connect_inline(str(tmp_path / "x.db"))
    try:
        assert isinstance(connection, InlineConnection)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await connection.execute("SELECT * FROM missing")
        async with connection.execute("SELECT 40 + 2") as cursor:
            assert await cursor.fetchone() == (42,)
    finally:
        await connection.close()
    with pytest.raises(ValueError, match=r"closed|no active connection"):
        await connection.execute("SELECT 1")


@pytest.mark.parametrize(
    ("code", "waited"),
    [
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_BUSY_RECOVERY, True),  # another process recovers a new database's WAL
        (sqlite3.SQLITE_BUSY_TIMEOUT, True),
        (sqlite3.SQLITE_BUSY_SNAPSHOT, False),  # only a new transaction resolves it
        (sqlite3.SQLITE_ERROR, False),
    ],
)
async def test_the_busy_family_is_waited_for_and_other_codes_raise(code: int, waited: bool) -> None:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    backoff = _sqlite_inline.BusyBackoff()
    if waited:
        await backoff.wait(error)  # sleeps and returns: the statement is tried again
    else:
        with pytest.raises(sqlite3.OperationalError):
            await backoff.wait(error)


async def test_single_statements_run_inline_and_bulk_writes_on_the_worker_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    connection = await connect_inline(str(path), isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await connection.create_function("thread_id", 0, threading.get_ident)
        await connection.execute("CREATE TABLE t (v INTEGER, thread INTEGER)")
        async with connection.execute("SELECT thread_id()") as cursor:
            assert await cursor.fetchone() == (threading.get_ident(),)
        # A bulk write that first finds the database locked by another connection waits for it
        # (on the loop, with the same backoff), then runs on the worker thread.
        other.execute("BEGIN IMMEDIATE")
        release = asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
        rows = [(value,) for value in range(100)]
        await connection.executemany("INSERT INTO t VALUES (?, thread_id())", rows)
        release.cancel()
        async with connection.execute("SELECT COUNT(*), MIN(thread), MAX(thread) FROM t") as cur:
            count, low, high = await cur.fetchone() or (0, 0, 0)
        assert count == 100
        assert low == high != threading.get_ident()
    finally:
        other.close()
        await connection.close()


async def test_the_commit_or_rollback_of_a_bulk_write_runs_on_the_worker_thread(
    tmp_path: Path,
) -> None:
    connection = await connect_inline(str(tmp_path / "x.db"))  # sqlite3 opens transactions
    threads: list[tuple[str, int]] = []
    try:
        await connection.execute("CREATE TABLE t (v INTEGER)")
        await connection.commit()
        await connection.set_trace_callback(
            lambda sql: threads.append((sql.split()[0].upper(), threading.get_ident()))
        )
        loop = threading.get_ident()
        for end in ("commit", "rollback"):
            await connection.execute("INSERT INTO t VALUES (0)")
            await getattr(connection, end)()  # a small transaction ends on the loop
            await connection.executemany("INSERT INTO t VALUES (?)", [(v,) for v in range(10)])
            await getattr(connection, end)()  # a bulk one on the thread that wrote it
        ends = [thread for statement, thread in threads if statement in {"COMMIT", "ROLLBACK"}]
        assert len(ends) == 4
        assert ends[0] == ends[2] == loop
        assert ends[1] == ends[3] != loop
        async with connection.execute("SELECT COUNT(*) FROM t") as cursor:
            assert await cursor.fetchone() == (11,)  # the rolled-back bulk write is gone
    finally:
        await connection.close()


async def test_opening_a_new_file_another_process_holds_waits_to_switch_it_to_wal(
    tmp_path: Path,
) -> None:
    # Switching to WAL needs the file to itself; another process writing to it (still in its
    # rollback journal mode) makes the switch wait, on the loop, not fail.
    path = tmp_path / "x.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (v INTEGER)")
    other.execute("BEGIN EXCLUSIVE")
    release = asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    try:
        async with Database.from_url(f"sqlite:///{path}") as db, db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("SELECT COUNT(*) FROM t"))).scalar_one() == 0
    finally:
        release.cancel()
        other.close()


async def _slow_write(
    connection: aiosqlite.Connection,
) -> tuple[asyncio.Task[object], threading.Event]:
    """A 20-row INSERT taking 0.2 s on the worker thread, 50 ms under way; the event is set
    when sqlite3 has consumed the last row."""
    finished = threading.Event()

    def slow_rows() -> Iterator[tuple[int]]:  # consumed by sqlite3 on the worker thread
        for value in range(20):
            time.sleep(0.01)
            yield (value,)
        finished.set()

    await connection.execute("CREATE TABLE t (v INTEGER)")
    writing = asyncio.create_task(connection.executemany("INSERT INTO t VALUES (?)", slow_rows()))
    await asyncio.sleep(0.05)
    return writing, finished


async def test_a_cancelled_bulk_write_ends_on_its_thread_before_the_caller_hears_of_it(
    tmp_path: Path,
) -> None:
    connection = await connect_inline(str(tmp_path / "x.db"), isolation_level=None)
    try:
        writing, finished = await _slow_write(connection)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        # Only now may the loop use the connection again (a rollback, a close): the statement
        # on the worker thread is over.
        assert finished.is_set()
        async with connection.execute("SELECT COUNT(*) FROM t") as cursor:
            assert await cursor.fetchone() == (20,)
    finally:
        await connection.close()


async def test_a_bulk_write_outlives_every_task_being_cancelled(tmp_path: Path) -> None:
    # Closing a loop cancels every task, not only the caller: the statement must still end on
    # its thread before the caller goes on (to a rollback or close on the loop's thread).
    connection = await connect_inline(str(tmp_path / "x.db"), isolation_level=None)
    try:
        writing, finished = await _slow_write(connection)
        for _ in range(3):
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await writing
        assert finished.is_set()
    finally:
        await connection.close()
