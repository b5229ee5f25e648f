"""StreamRun's watcher: a run this call just created streams its first event without a read, a
run executing here is polled without reads, and the stream still has every event once, in
order."""

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
WORKFLOW = workflow_definition("idle", "never executed: the engine is not started")


class IdleRunner(AnswersAsGiven):
    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        return {WORKFLOW.name: WORKFLOW}

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        raise AssertionError("no worker runs in these tests")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RunEngine]:
    async with migrated_sqlite(tmp_path) as database:
        yield RunEngine(runs=CountingRuns(database=database), runner=IdleRunner(), bus=LocalBus())


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


async def _stream_then_cancel(
    engine: RunEngine, run: RunRecord, known: list[RunEvent]
) -> tuple[list[RunEvent], int]:
    """Every event a watcher of ``run`` gets until it is cancelled, and the log reads made
    before the first event arrived."""
    runs = engine.runs
    assert isinstance(runs, CountingRuns)
    runs.reads = 0
    seen: list[RunEvent] = []
    reads_at_first = -1
    watching = engine.watch(TENANT, run.run_id, run=run, known=known)
    async for event in watching:
        seen.append(event)
        if len(seen) == 1:
            reads_at_first = runs.reads
            await engine.cancel(TENANT, run.run_id, "test over")
    return seen, reads_at_first


async def test_a_new_runs_first_event_is_streamed_without_reading_the_log(
    engine: RunEngine,
) -> None:
    written: list[RunEvent] = []
    run = await _start(engine, "req-1", written)
    assert [(e.sequence, e.payload["to"]) for e in written] == [(1, RunState.QUEUED.value)]
    seen, reads = await asyncio.wait_for(_stream_then_cancel(engine, run, written), 10)
    assert reads == 0
    assert seen == await engine.runs.events_after(TENANT, run.run_id, 0, 100)  # once, in order
    assert [e.payload["to"] for e in seen] == [RunState.QUEUED.value, RunState.CANCELLED.value]


async def test_known_events_short_of_the_runs_last_sequence_are_not_trusted(
    engine: RunEngine,
) -> None:
    first: list[RunEvent] = []
    run = await _start(engine, "req-1", first)
    retried: list[RunEvent] = []
    assert (await _start(engine, "req-1", retried)).run_id == run.run_id
    assert retried == []  # a retry wrote nothing, so it knows nothing
    await engine.runs.append_event(run.run_id, EventKind.STEP_STARTED, {"step": "elsewhere"})
    run = await engine.runs.get(TENANT, run.run_id)  # last_sequence 2; only event 1 is known
    seen, reads = await asyncio.wait_for(_stream_then_cancel(engine, run, first), 10)
    assert reads == 1  # the first pass read the log
    assert [e.sequence for e in seen] == [1, 2, 3]


class GatedRunner(AnswersAsGiven):
    """Emits one step event, then waits for the test to let it finish."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        return {WORKFLOW.name: WORKFLOW}

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        await events.emit(EventKind.STEP_STARTED, {"step": "gated"})
        self.started.set()
        await self.release.wait()
        await events.emit(EventKind.STEP_FINISHED, {"step": "gated"})
        return Completed({})


async def test_safety_polls_of_a_run_executing_here_do_not_read_the_log(tmp_path: Path) -> None:
    runner = GatedRunner()
    settings = EngineSettings(watch_poll_seconds=0.02, poll_seconds=0.05)
    async with migrated_sqlite(tmp_path) as database:
        runs = CountingRuns(database=database)
        async with RunEngine(runs=runs, runner=runner, bus=LocalBus(), settings=settings) as engine:
            first: list[RunEvent] = []
            run = await _start(engine, "req-1", first)
            seen: list[RunEvent] = []

            async def watch() -> None:
                async for event in engine.watch(TENANT, run.run_id, run=run, known=first):
                    seen.append(event)

            watching = asyncio.create_task(watch())
            await asyncio.wait_for(runner.started.wait(), 10)
            await asyncio.sleep(0.05)  # the watcher catches up with the step's event
            reads = runs.reads
            await asyncio.sleep(0.3)  # about 15 safety polls while the run executes here
            assert runs.reads == reads
            runner.release.set()
            await asyncio.wait_for(watching, 10)
            logged = await runs.events_after(TENANT, run.run_id, 0, 100)
    assert seen == logged  # every event once, in order
    assert EventKind.STEP_FINISHED in [e.kind for e in seen]
    assert seen[-1].payload["to"] == RunState.SUCCEEDED.value


async def test_safety_polls_read_the_log_once_the_run_executes_elsewhere(
    engine: RunEngine,
) -> None:
    # The engine is not started: the run is not executing here, so another replica may write
    # its events, and a poll must read them even when the bus never announced them.
    first: list[RunEvent] = []
    run = await _start(engine, "req-1", first)
    engine.settings = EngineSettings(watch_poll_seconds=0.02)
    seen: list[RunEvent] = []

    async def watch() -> None:
        async for event in engine.watch(TENANT, run.run_id, run=run, known=first):
            seen.append(event)

    watching = asyncio.create_task(watch())
    await engine.runs.append_event(run.run_id, EventKind.STEP_STARTED, {"step": "elsewhere"})
    for _ in range(200):  # unannounced: only a poll finds it
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert [e.sequence for e in seen] == [1, 2]
    await engine.cancel(TENANT, run.run_id, "test over")
    await asyncio.wait_for(watching, 10)


async def test_safety_polls_of_many_queued_runs_share_one_query_and_read_only_news(
    engine: RunEngine,
) -> None:
    # The engine is not started: every run waits in the queue, so a lost notification is
    # possible (another replica may claim it) and the polls must look at the store.
    runs = engine.runs
    assert isinstance(runs, CountingRuns)
    engine.settings = EngineSettings(watch_poll_seconds=0.02)
    watched = []
    for index in range(20):
        first: list[RunEvent] = []
        watched.append((await _start(engine, f"req-{index}", first), first))
    seen: dict[str, list[int]] = {run.run_id: [] for run, _ in watched}

    async def watch(run: RunRecord, first: list[RunEvent]) -> None:
        async for event in engine.watch(TENANT, run.run_id, run=run, known=first):
            seen[run.run_id].append(event.sequence)

    watchers = [asyncio.create_task(watch(run, first)) for run, first in watched]
    await asyncio.sleep(0.5)  # about 25 polls per watcher, 500 in all
    assert runs.reads == 0  # the first events were known; no poll found news
    assert 0 < runs.probes <= 15  # one query per probe window (0.05 s), not one per poll
    news = watched[3][0].run_id
    await runs.append_event(news, EventKind.STEP_STARTED, {"step": "elsewhere"})  # unannounced
    for _ in range(200):
        if len(seen[news]) == 2:
            break
        await asyncio.sleep(0.02)
    assert seen[news] == [1, 2]
    assert runs.reads == 1  # only that watcher read the log
    assert all(seen[run.run_id] == [1] for run, _ in watched if run.run_id != news)
    for run, _ in watched:
        await engine.cancel(TENANT, run.run_id, "test over")
    await asyncio.wait_for(asyncio.gather(*watchers), 10)
