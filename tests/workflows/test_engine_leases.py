"""The engine's lease heartbeat: one renewal for all the runs a replica executes, which also
stops the runs whose cancel was requested and the ones another replica took over."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import update

from ai_orchestration import errors
from ai_orchestration.storage import Database, RunRepository
from ai_orchestration.storage._models import WorkflowRunModel
from ai_orchestration.workflows import EventSink, Outcome, RunRecord, RunState, WorkflowDefinition
from ai_orchestration.workflows.engine import EngineSettings, LocalBus, RunEngine
from tests.workflows._doubles import AnswersAsGiven, wait_for_state, workflow_definition

TENANT = "tenant-a"
WORKFLOW = workflow_definition("blocking", "waits until the test lets it finish")


class BlockingRunner(AnswersAsGiven):
    """A workflow that runs until cancelled (the test double of a long LLM step)."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.cancelled: set[str] = set()

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        return {WORKFLOW.name: WORKFLOW}

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        await self.started.put(run.run_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.add(run.run_id)
            raise
        raise AssertionError("unreachable")


@pytest.fixture
async def runs(tmp_path: Path) -> AsyncIterator[RunRepository]:
    async with Database.from_url(f"sqlite:///{tmp_path}/service.db") as database:
        await database.migrate()
        yield RunRepository(database=database)


async def _engine_with_running_runs(
    runs: RunRepository, runner: BlockingRunner, count: int
) -> tuple[RunEngine, list[str]]:
    settings = EngineSettings(heartbeat_seconds=0.05, lease_seconds=10, poll_seconds=0.05)
    # Its own bus: cancel requests reach the engine only through the heartbeat's flag.
    engine = RunEngine(runs=runs, runner=runner, bus=LocalBus(), settings=settings)
    for index in range(count):
        request = f"req-{index}"
        await engine.start_run(
            TENANT,
            workflow=WORKFLOW.name,
            input_document={},
            request_id=request,
            request_digest=hashlib.sha256(request.encode()).hexdigest(),
        )
    await engine.start()
    started = [await asyncio.wait_for(runner.started.get(), 5) for _ in range(count)]
    return engine, started


async def _state(runs: RunRepository, run_id: str, want: RunState) -> RunRecord:
    return await wait_for_state(runs, TENANT, run_id, want)


async def test_a_cancel_flag_set_elsewhere_stops_only_that_run(runs: RunRepository) -> None:
    runner = BlockingRunner()
    engine, (doomed, kept) = await _engine_with_running_runs(runs, runner, 2)
    try:
        await runs.request_cancel(TENANT, doomed)  # as another replica's CancelRun does
        await _state(runs, doomed, RunState.CANCELLED)
        assert runner.cancelled == {doomed}
        before = (await runs.get(TENANT, kept)).lease_expires_at
        await asyncio.sleep(0.2)
        after = await runs.get(TENANT, kept)
        assert after.state is RunState.RUNNING
        assert before is not None and after.lease_expires_at is not None
        assert after.lease_expires_at > before  # still renewed
    finally:
        await engine.stop()


async def test_a_run_another_replica_took_over_is_stopped_here(runs: RunRepository) -> None:
    runner = BlockingRunner()
    engine, (taken, kept) = await _engine_with_running_runs(runs, runner, 2)
    try:
        async with runs._database.transaction() as session:  # another replica's claim
            await session.execute(
                update(WorkflowRunModel)
                .where(WorkflowRunModel.run_id == taken)
                .values(lease_owner="other-replica")
            )
        for _ in range(100):
            if taken in runner.cancelled:
                break
            await asyncio.sleep(0.02)
        assert runner.cancelled == {taken}
        still = await runs.get(TENANT, taken)
        assert (still.state, still.lease_owner) == (RunState.RUNNING, "other-replica")
        assert (await runs.get(TENANT, kept)).state is RunState.RUNNING
    finally:
        await engine.stop()
    # Stopping hands the run it still executed back to the queue; the other one is not its own.
    assert (await runs.get(TENANT, kept)).state is RunState.QUEUED
    assert (await runs.get(TENANT, taken)).lease_owner == "other-replica"


async def test_retire_ends_every_run_then_forgets_their_checkpoints(runs: RunRepository) -> None:
    """EraseCustomer's first half: a running run is stopped by its worker, and only then are
    its checkpoints deleted."""
    runner = BlockingRunner()
    engine, (running,) = await _engine_with_running_runs(runs, runner, 1)
    try:
        other = await runs.create(
            "tenant-b",
            workflow=WORKFLOW.name,
            workflow_version="1",
            priority=0,
            request_id="req-b",
            request_digest=hashlib.sha256(b"req-b").hexdigest(),
            labels={},
            input={},
            timeout_seconds=60,
        )
        await engine.retire(TENANT, [running, "no-such-run"], "the customer was erased")
        assert (await runs.get(TENANT, running)).state is RunState.CANCELLED
        assert runner.cancelled == {running}
        assert runner.forgotten == {running}
        # Another tenant's run named by mistake is neither cancelled nor forgotten.
        await engine.retire(TENANT, [other.run.run_id], "the customer was erased")
        assert (await runs.get("tenant-b", other.run.run_id)).state is not RunState.CANCELLED
        assert runner.forgotten == {running}
    finally:
        await engine.stop()


async def test_retire_gives_up_on_a_run_no_worker_stops_and_forgets_nothing(
    runs: RunRepository,
) -> None:
    """A run leased to a replica that died stays RUNNING until its lease expires: retiring it
    meanwhile fails with UNAVAILABLE, and its checkpoints are kept for the next try."""
    runner = BlockingRunner()
    settings = EngineSettings(heartbeat_seconds=0.05, lease_seconds=0.1, poll_seconds=0.05)
    engine = RunEngine(runs=runs, runner=runner, bus=LocalBus(), settings=settings)
    await engine.start_run(
        TENANT,
        workflow=WORKFLOW.name,
        input_document={},
        request_id="req-dead",
        request_digest=hashlib.sha256(b"req-dead").hexdigest(),
    )
    claimed = await runs.claim("dead-replica", lease_seconds=600)
    assert claimed is not None
    with pytest.raises(errors.UnavailableError) as caught:
        await engine.retire(TENANT, [claimed.run_id], "the customer was erased")
    assert caught.value.reason == "RUNS_STILL_STOPPING"
    assert claimed.run_id in caught.value.message
    assert runner.forgotten == set()
    assert (await runs.get(TENANT, claimed.run_id)).cancel_requested
