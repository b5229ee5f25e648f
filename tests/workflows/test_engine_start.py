"""A replica with a free slot claims the run it queues in the same transaction; a full one
leaves the run to the queue."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from ai_orchestration.workflows import (
    Completed,
    EventKind,
    EventSink,
    Outcome,
    RunEvent,
    RunRecord,
    RunState,
    WorkflowDefinition,
)
from ai_orchestration.workflows.engine import EngineSettings, LocalBus, RunEngine
from tests.workflows._doubles import (
    AnswersAsGiven,
    CountingRuns,
    migrated_sqlite,
    workflow_definition,
)

TENANT = "tenant-a"
WORKFLOW = workflow_definition("gated", "finishes when the test opens its gate")


class GatedRunner(AnswersAsGiven):
    """Each run waits for the gate, then completes."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        return {WORKFLOW.name: WORKFLOW}

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        self.started.append(run.run_id)
        await self.gate.wait()
        return Completed({"content_generation": {"delivered": True}})


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RunEngine]:
    async with migrated_sqlite(tmp_path) as database:
        # The claim loop polls rarely: only the bus (or a start here) brings work.
        settings = EngineSettings(concurrency=1, poll_seconds=60)
        runs = CountingRuns(database=database)
        async with RunEngine(
            runs=runs, runner=GatedRunner(), bus=LocalBus(), settings=settings
        ) as started:
            await asyncio.sleep(0.05)  # the loop's first claim: nothing queued yet
            yield started


async def _start(engine: RunEngine, request_id: str, appended: list[RunEvent]) -> RunRecord:
    """Start a run; the events the engine reports it wrote for it go to ``appended``."""
    started = await engine.start_run(
        TENANT,
        workflow=WORKFLOW.name,
        input_document={},
        request_id=request_id,
        request_digest=hashlib.sha256(request_id.encode()).hexdigest(),
    )
    appended.extend(started.events)
    return started.run


async def _state(engine: RunEngine, run_id: str, wanted: RunState) -> RunRecord:
    """The run once it reached ``wanted``, well before the claim loop's 60 s poll."""
    async for event in engine.watch(TENANT, run_id):
        if event.kind is EventKind.STATE_CHANGED and event.payload["to"] == wanted.value:
            return await engine.get(TENANT, run_id)
    raise AssertionError(f"run {run_id} ended without reaching {wanted.value}")


async def test_a_free_slot_claims_the_new_run_at_once_and_a_full_engine_queues_it(
    engine: RunEngine,
) -> None:
    runs, runner = engine.runs, engine.runner
    assert isinstance(runs, CountingRuns) and isinstance(runner, GatedRunner)
    claims_before = runs.claims

    first: list[RunEvent] = []
    run = await _start(engine, "req-1", first)
    assert (run.state, run.lease_owner, run.last_sequence) == (
        RunState.RUNNING,
        engine.worker_id,
        2,
    )
    assert [event.payload["to"] for event in first] == ["QUEUED", "RUNNING"]
    await asyncio.sleep(0.05)
    assert runner.started == [run.run_id]  # executing, without a claim query of the loop
    assert runs.claims == claims_before

    second: list[RunEvent] = []
    queued = await _start(engine, "req-2", second)  # the only slot is taken
    assert (queued.state, [event.sequence for event in second]) == (RunState.QUEUED, [1])
    await asyncio.sleep(0.05)
    assert runner.started == [run.run_id]

    runner.gate.set()
    async with asyncio.timeout(5):
        await _state(engine, run.run_id, RunState.SUCCEEDED)
        await _state(engine, queued.run_id, RunState.SUCCEEDED)  # claimed when the slot opened
    assert runner.started == [run.run_id, queued.run_id]
