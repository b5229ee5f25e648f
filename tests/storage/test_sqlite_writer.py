"""The dedicated SQLite write connection: whole transactions, lock waits that leave the loop
running, and rows identical to the engine's."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, select, text

from ai_orchestration.records import DeliveryRequest
from ai_orchestration.storage import (
    Database,
    DeliveryLedger,
    RunRepository,
    _sqlite_writer,
    compute_request_digest,
)
from ai_orchestration.storage._models import WorkflowRunModel
from ai_orchestration.storage._sqlite_writer import SqliteWriter, WriterSession
from ai_orchestration.workflows import EventKind, RunState
from tests.storage._support import write_past_a_held_lock

BY_ID = select(WorkflowRunModel).where(WorkflowRunModel.run_id == bindparam("run_id"))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.from_url(f"sqlite:///{tmp_path}/service.db") as db:
        await db.migrate()
        async with db.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL)"))
        yield db


def _insert(connection: sqlite3.Connection, *, value: int) -> None:
    connection.execute("INSERT INTO t (v) VALUES (?)", (value,))


def _writer(database: Database) -> SqliteWriter:
    writer = database.sqlite_writer
    assert writer is not None
    return writer


async def _values(database: Database) -> list[int]:
    async with database.engine.connect() as connection:
        return list((await connection.execute(text("SELECT v FROM t ORDER BY v"))).scalars())


async def _new_run(database: Database, request_id: str = "r-1") -> str:
    created = await RunRepository(database=database).create(
        "tenant-a",
        workflow="content_generation",
        workflow_version="1",
        priority=3,
        request_id=request_id,
        request_digest=compute_request_digest(request_id.encode()),
        labels={"team": "growth"},
        input={"content_generation": {"purpose": "webinar"}},
        timeout_seconds=60,
    )
    return created.run.run_id


async def test_a_transaction_commits_as_a_whole_or_not_at_all(database: Database) -> None:
    writer = _writer(database)

    def insert_two(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO t (v) VALUES (1), (2)")
        return "done"

    def insert_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t (v) VALUES (3)")
        raise LookupError("the work failed half way")

    assert await writer.write(insert_two) == "done"
    with pytest.raises(LookupError, match="half way"):
        await writer.write(insert_then_fail)
    assert await _values(database) == [1, 2]
    assert await writer.write(insert_two) == "done"  # the connection is usable again
    assert await _values(database) == [1, 1, 2, 2]


async def test_a_write_waits_for_the_lock_without_blocking_the_loop(database: Database) -> None:
    writer = _writer(database)
    await write_past_a_held_lock(
        database, lambda: writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES (2)"))
    )
    assert await _values(database) == [1, 2]


async def test_rows_read_by_the_writer_equal_the_engines(database: Database) -> None:
    run_id = await _new_run(database)
    async with database.sessionmaker() as session:
        expected = await session.get(WorkflowRunModel, run_id)
    assert expected is not None
    writer = _writer(database)

    def load(connection: sqlite3.Connection) -> WorkflowRunModel | None:
        return WriterSession(writer, connection).load(WorkflowRunModel, BY_ID, {"run_id": run_id})

    loaded = await writer.write(load)
    assert loaded is not None
    columns = [column.name for column in WorkflowRunModel.__table__.columns]
    assert {name: getattr(loaded, name) for name in columns} == {
        name: getattr(expected, name) for name in columns
    }
    assert loaded.created_at.tzinfo is not None  # UTCDateTime's zone, as the engine gives it
    assert loaded.labels == {"team": "growth"}  # JSON decoded


async def test_a_flush_updates_only_the_changed_columns(database: Database) -> None:
    run_id = await _new_run(database)
    writer = _writer(database)
    statements: list[str] = []

    def change(connection: sqlite3.Connection) -> None:
        session = WriterSession(writer, connection)
        row = session.load(WorkflowRunModel, BY_ID, {"run_id": run_id})
        assert row is not None
        row.priority = 7
        row.output = {"text": "hello"}
        connection.set_trace_callback(statements.append)
        try:
            session.flush()
            session.flush()  # nothing changed since: nothing written
        finally:
            connection.set_trace_callback(None)

    await writer.write(change)
    assert len(statements) == 1
    changed = statements[0].partition(" SET ")[2].partition(" WHERE ")[0]
    assert [part.split("=")[0] for part in changed.split(", ")] == ["priority", "output"]
    run = await RunRepository(database=database).get("tenant-a", run_id)
    assert (run.priority, run.output) == (7, {"text": "hello"})


async def test_only_a_sqlite_file_database_has_a_writer(tmp_path: Path) -> None:
    async with Database.from_url("sqlite://") as memory:
        assert memory.sqlite_writer is None
    database = Database.from_url(f"sqlite:///{tmp_path}/x.db")
    writer = database.sqlite_writer
    assert writer is not None
    await database.close()
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write(lambda c: None)


async def test_a_runs_writes_bypass_the_engine_on_sqlite(
    database: Database,
) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    runs, ledger = RunRepository(database=database), DeliveryLedger(database=database)
    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        run_id = await _new_run(database)
        claimed = (await runs.claim_many("worker-1", 4, lease_seconds=30)).runs
        await runs.append_event(run_id, EventKind.STEP_STARTED, {"step": "write"})
        request = DeliveryRequest(
            f"{run_id}:deliver", "tenant-a", run_id, "CHANNEL_EMAIL", {"name": "Ada"}, {}
        )
        delivered = [await ledger.deliver(request) for _ in range(2)]
        ended = (
            await runs.transition(
                run_id,
                to=RunState.SUCCEEDED,
                expected_from=[RunState.RUNNING],
                worker_id="worker-1",
            )
        ).run
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert [run.run_id for run in claimed] == [run_id]
    assert (ended.state, ended.last_sequence) == (RunState.SUCCEEDED, 4)
    assert delivered == [True, False]
    assert statements == []


async def test_a_statement_missing_a_parameter_value_is_refused(database: Database) -> None:
    writer = _writer(database)

    def load_without_the_id(connection: sqlite3.Connection) -> None:
        WriterSession(writer, connection).load(WorkflowRunModel, BY_ID, {"run": "typo"})

    with pytest.raises(ValueError, match="no value given for the bound parameter 'run_id'"):
        await writer.write(load_without_the_id)


async def test_the_wal_is_copied_into_the_database_off_the_loop(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_writer, "CHECKPOINT_EVERY", 5)
    writer = _writer(database)
    with contextlib.closing(sqlite3.connect(tmp_path / "service.db")) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema, in the main file

    def rows_in_the_database_file() -> int:
        """The rows of ``t`` in the main file alone (what a checkpoint copied there)."""
        copy = tmp_path / "copy.db"
        shutil.copyfile(tmp_path / "service.db", copy)
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])

    for value in range(4):
        await writer.write(functools.partial(_insert, value=value))
    assert writer.checkpoint_done and rows_in_the_database_file() == 0  # all in the WAL
    await writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES (4)"))  # the fifth commit
    assert not writer.checkpoint_done  # on a worker thread, after the commit returned
    await asyncio.wait_for(writer.checkpoint_finished(), 5)
    assert rows_in_the_database_file() == 5
    autocheckpoint = await writer.write(
        lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    )
    assert autocheckpoint == 0  # never inside one of this connection's commits
