"""The run queue on Redis Streams (real Redis, real SQLite): fair picking, leases held by
pending entries, re-claim from a dead replica, dead-lettering, and the database deciding
whenever the streams deliver a run that needs no worker."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from ai_orchestration.storage import Claimant, RunRepository
from ai_orchestration.storage._models import WorkflowRunModel
from ai_orchestration.workflows import (
    Completed,
    EventKind,
    EventSink,
    Outcome,
    RunRecord,
    RunState,
    WorkflowDefinition,
)
from ai_orchestration.workflows.engine import (
    DatabaseQueue,
    EngineSettings,
    LocalBus,
    RunEngine,
    StreamQueue,
)
from ai_orchestration.workflows.engine._metrics import WorkflowMetrics
from ai_orchestration.workflows.engine._streams import ACTIVE, GROUP, INDEX
from tests.workflows._doubles import (
    AnswersAsGiven,
    migrated_sqlite,
    wait_for_state,
    workflow_definition,
)

WORKFLOW = workflow_definition("counted", "completes at once, counting its executions")


class CountingRunner(AnswersAsGiven):
    """Completes every run at once; counts how often each run was executed."""

    def __init__(self) -> None:
        self.executions: dict[str, int] = {}

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        return {WORKFLOW.name: WORKFLOW}

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        self.executions[run.run_id] = self.executions.get(run.run_id, 0) + 1
        await events.emit(EventKind.STEP_STARTED, {"step": "only"})
        return Completed({"content_generation": {"delivered": True}})


@dataclass
class Setup:
    runs: RunRepository
    client: aioredis.Redis

    def queue(self, lease_seconds: float = 10.0) -> StreamQueue:
        return StreamQueue(client=self.client, runs=self.runs, lease_seconds=lease_seconds)


@pytest.fixture
async def setup(tmp_path: Path, redis_url: str) -> AsyncIterator[Setup]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with migrated_sqlite(tmp_path) as database:
            yield Setup(RunRepository(database=database), client)
    finally:
        await client.aclose()


async def _create(
    runs: RunRepository, tenant: str, request_id: str, priority: int = 0
) -> RunRecord:
    created = await runs.create(
        tenant,
        workflow=WORKFLOW.name,
        workflow_version=WORKFLOW.version,
        priority=priority,
        request_id=request_id,
        request_digest=hashlib.sha256(request_id.encode()).hexdigest(),
        labels={},
        input={},
        timeout_seconds=60,
    )
    return created.run


async def _claimed(
    setup: Setup, request_id: str, worker_id: str, lease_seconds: float
) -> tuple[StreamQueue, RunRecord]:
    """A new run of tenant-a, queued and claimed by ``worker_id`` through its own queue."""
    run = await _create(setup.runs, "tenant-a", request_id)
    queue = setup.queue(lease_seconds)
    await queue.queued(run)
    (claimed,) = (await queue.claim(Claimant(worker_id, lease_seconds), 1)).runs
    assert claimed.run_id == run.run_id
    return queue, claimed


# tenant, request id, priority; in creation order
_BACKLOG = [
    ("tenant-a", "a1", 0),
    ("tenant-a", "a2", 0),
    ("tenant-a", "a3", 0),
    ("tenant-a", "a4", 0),
    ("tenant-b", "b1", 0),
    ("tenant-b", "b2", 5),
]


async def test_the_streams_pick_runs_in_the_order_the_database_queue_claims_them(
    tmp_path: Path, setup: Setup
) -> None:
    names: dict[str, str] = {}
    for tenant, request_id, priority in _BACKLOG:
        run = await _create(setup.runs, tenant, request_id, priority)
        names[run.run_id] = request_id
        await setup.queue().queued(run)
        await asyncio.sleep(0.002)  # distinct entry ids, as distinct creation times
    deliveries = await setup.queue().take("replica-1", len(_BACKLOG))
    streamed = [names[delivery.run_id] for delivery in deliveries]

    async with migrated_sqlite(tmp_path / "other") as database:  # the same backlog, claimed
        runs = RunRepository(database=database)
        by_id = {}
        for tenant, request_id, priority in _BACKLOG:
            by_id[(await _create(runs, tenant, request_id, priority)).run_id] = request_id
            await asyncio.sleep(0.002)
        claimed = (await runs.claim_many("replica-1", len(_BACKLOG), lease_seconds=10)).runs
        database_order = [by_id[run.run_id] for run in claimed]

    # b2 first (highest priority); then the tenant with fewer runs in progress, then oldest.
    assert streamed == ["b2", "a1", "a2", "b1", "a3", "a4"]
    assert streamed == database_order
    assert await setup.queue().take("replica-2", 5) == []  # each entry is delivered once


async def test_fairness_counts_the_runs_each_tenant_has_in_progress(setup: Setup) -> None:
    queue = setup.queue()
    for index in range(3):
        await queue.queued(await _create(setup.runs, "busy", f"busy-{index}"))
    first = await queue.take("replica-1", 2)  # busy now has 2 in progress
    quiet = await _create(setup.runs, "quiet", "quiet-0")
    await queue.queued(quiet)
    (second,) = await queue.take("replica-2", 1)
    assert len(first) == 2
    assert second.run_id == quiet.run_id  # newer, but its tenant has nothing running


async def _queue_empty(client: aioredis.Redis) -> bool:
    return await client.zcard(ACTIVE) == 0 and await client.hlen(INDEX) == 0


def _engine(setup: Setup, runner: CountingRunner, lease_seconds: float = 10.0) -> RunEngine:
    settings = EngineSettings(
        lease_seconds=lease_seconds,
        heartbeat_seconds=min(0.1, lease_seconds / 4),
        poll_seconds=0.05,
    )
    return RunEngine(
        runs=setup.runs,
        runner=runner,
        bus=LocalBus(),
        settings=settings,
        queue=setup.queue(lease_seconds),
    )


async def _start(engine: RunEngine, request_id: str) -> RunRecord:
    started = await engine.start_run(
        "tenant-a",
        workflow=WORKFLOW.name,
        input_document={},
        request_id=request_id,
        request_digest=hashlib.sha256(request_id.encode()).hexdigest(),
    )
    return started.run


async def test_runs_started_on_an_engine_go_through_the_streams_and_their_entries_go(
    setup: Setup,
) -> None:
    runner = CountingRunner()
    async with _engine(setup, runner) as engine:
        runs = [await _start(engine, f"req-{index}") for index in range(5)]
        # Never claimed at creation, even with free slots: the streams pick.
        assert {run.state for run in runs} == {RunState.QUEUED}
        started = [run.run_id for run in runs]
        for run_id in started:
            await wait_for_state(setup.runs, "tenant-a", run_id, RunState.SUCCEEDED)
        for _ in range(100):
            if await _queue_empty(setup.client):
                break
            await asyncio.sleep(0.02)
    assert runner.executions == dict.fromkeys(started, 1)
    assert await _queue_empty(setup.client)


async def test_a_dead_replicas_run_is_taken_over_once_its_lease_expires(setup: Setup) -> None:
    _, run = await _claimed(setup, "doomed", "dead-replica", 1.0)  # then it dies: no renewal

    runner = CountingRunner()
    async with _engine(setup, runner, lease_seconds=1.0):
        done = await wait_for_state(setup.runs, "tenant-a", run.run_id, RunState.SUCCEEDED)
    assert runner.executions == {run.run_id: 1}
    assert done.attempts == 2
    reasons = [
        event.payload["reason"]
        for event in await setup.runs.events_after("tenant-a", run.run_id, 0, 50)
        if event.kind is EventKind.STATE_CHANGED
    ]
    assert any(str(reason).startswith("lease expired; re-claimed") for reason in reasons)
    assert await _queue_empty(setup.client)


async def test_a_live_replicas_entries_are_not_taken_over(setup: Setup) -> None:
    holder, claimed = await _claimed(setup, "held", "holder", 0.4)
    other = setup.queue(lease_seconds=0.4)
    for _ in range(6):  # three times the idle limit, the holder renewing as its heartbeat does
        await asyncio.sleep(0.1)
        await holder.renew([claimed.run_id])
        await setup.runs.heartbeat(claimed.run_id, "holder", lease_seconds=0.4)
        assert await other.reclaim("other", 5) == []
    assert (await setup.runs.get("tenant-a", claimed.run_id)).lease_owner == "holder"


async def test_an_entry_delivered_twice_never_runs_its_run_twice(setup: Setup) -> None:
    first, run = await _claimed(setup, "twice", "first", 0.4)
    await setup.client.hdel(INDEX, run.run_id)  # as if the index was lost: a second entry
    await first.queued(run)

    second = setup.queue(lease_seconds=0.4)
    assert (await second.claim(Claimant("second", 0.4), 1)).runs == []  # busy: the lease is live
    await setup.runs.transition(
        run.run_id, to=RunState.SUCCEEDED, expected_from=[RunState.RUNNING], worker_id="first"
    )
    await first.finished(run.run_id)
    assert not await _queue_empty(setup.client)  # the duplicate, pending on the second replica
    await asyncio.sleep(0.25)  # idle for half a lease: looked at again, and dropped
    assert (await second.claim(Claimant("second", 0.4), 1)).runs == []
    assert await _queue_empty(setup.client)


async def test_a_run_cancelled_while_queued_is_dropped_from_the_stream(setup: Setup) -> None:
    run = await _create(setup.runs, "tenant-a", "cancelled")
    queue = setup.queue()
    await queue.queued(run)
    await setup.runs.request_cancel("tenant-a", run.run_id)
    assert (await queue.claim(Claimant("replica", 10), 1)).runs == []
    assert await _queue_empty(setup.client)
    assert (await setup.runs.get("tenant-a", run.run_id)).state is RunState.CANCELLED


async def test_a_run_whose_replicas_keep_dying_is_dead_lettered(setup: Setup) -> None:
    run = await _create(setup.runs, "tenant-a", "poison")
    lease = 0.3
    await setup.queue(lease).queued(run)
    for attempt in (1, 2):  # each replica claims it and dies
        queue = setup.queue(lease)
        claimed = (await queue.claim(Claimant(f"replica-{attempt}", lease, max_attempts=2), 1)).runs
        assert [r.attempts for r in claimed] == [attempt]
        await asyncio.sleep(lease + 0.05)  # the database lease and the entry's idle time run out
    last = setup.queue(lease)
    claim = await last.claim(Claimant("replica-3", lease, max_attempts=2), 1)
    written = claim.events
    assert claim.runs == []
    ended = await setup.runs.get("tenant-a", run.run_id)
    assert ended.state is RunState.DEAD_LETTERED
    assert ended.error is not None and ended.error.reason == "MAX_ATTEMPTS_EXCEEDED"
    assert [event.kind for event in written] == [EventKind.FAILED, EventKind.STATE_CHANGED]
    assert await _queue_empty(setup.client)


async def test_runs_queued_before_the_streams_are_found_by_reconciliation(setup: Setup) -> None:
    waiting = [await _create(setup.runs, "tenant-a", f"old-{index}") for index in range(3)]
    runner = CountingRunner()
    async with _engine(setup, runner):
        for run in waiting:
            await wait_for_state(setup.runs, "tenant-a", run.run_id, RunState.SUCCEEDED)
    assert runner.executions == {run.run_id: 1 for run in waiting}
    assert await setup.queue().reconcile() == 0  # nothing left without an entry


async def test_the_depth_counts_entries_not_yet_delivered(setup: Setup) -> None:
    queue = setup.queue()
    assert await queue.depth() == 0
    for index in range(3):
        await queue.queued(await _create(setup.runs, f"tenant-{index % 2}", f"depth-{index}"))
    assert await queue.depth() == 3
    (taken,) = (await queue.claim(Claimant("replica", 10), 1)).runs
    assert await queue.depth() == 2  # one is in progress now
    await setup.runs.transition(
        taken.run_id, to=RunState.SUCCEEDED, expected_from=[RunState.RUNNING], worker_id="replica"
    )
    await queue.finished(taken.run_id)
    assert await queue.depth() == 2
    assert await DatabaseQueue(setup.runs).depth() == 2  # the run table agrees


async def test_the_depth_gauge_samples_the_queue(setup: Setup) -> None:
    queue = setup.queue()
    engine = RunEngine(runs=setup.runs, runner=CountingRunner(), bus=LocalBus(), queue=queue)
    registry = CollectorRegistry()
    metrics = WorkflowMetrics(registry, engine)  # the engine is not started: nothing is taken
    for index in range(2):
        await queue.queued(await _create(setup.runs, "tenant-a", f"gauge-{index}"))
    await metrics.sample()
    assert registry.get_sample_value("aio_workflow_queue_depth") == 2
    assert registry.get_sample_value("aio_workflow_runs_executing") == 0


async def test_runs_are_claimed_from_the_database_while_redis_is_unreachable(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
    runner = CountingRunner()
    try:
        async with migrated_sqlite(tmp_path) as database:
            setup = Setup(RunRepository(database=database), client)
            async with _engine(setup, runner) as engine:
                started = [(await _start(engine, f"outage-{i}")).run_id for i in range(3)]
                for run_id in started:
                    await wait_for_state(setup.runs, "tenant-a", run_id, RunState.SUCCEEDED)
    finally:
        await client.aclose()
    assert runner.executions == dict.fromkeys(started, 1)


class HangingRunner(CountingRunner):
    """Executes every run until it is cancelled (a long LLM step)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.cancelled: asyncio.Queue[str] = asyncio.Queue()

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        await self.started.put(run.run_id)
        try:
            await asyncio.Event().wait()
        finally:
            await self.cancelled.put(run.run_id)
        raise AssertionError("unreachable")


async def test_a_run_taken_over_leaves_its_entry_to_the_new_holder(setup: Setup) -> None:
    runner = HangingRunner()
    async with _engine(setup, runner) as engine:
        run = await _start(engine, "taken-over")
        assert await asyncio.wait_for(runner.started.get(), 5) == run.run_id
        entry = await setup.client.hget(INDEX, run.run_id)
        assert isinstance(entry, bytes)
        stream, entry_id = entry.decode().split(" ")
        # Another replica takes the run over: its database lease, and the entry (XAUTOCLAIM).
        await setup.client.xclaim(stream, GROUP, "other-replica", 0, [entry_id], justid=True)
        async with setup.runs._database.transaction() as session:
            await session.execute(
                update(WorkflowRunModel)
                .where(WorkflowRunModel.run_id == run.run_id)
                .values(lease_owner="other-replica")
            )
        assert await asyncio.wait_for(runner.cancelled.get(), 5) == run.run_id
        await asyncio.sleep(0.1)  # the execution's task ends after the runner's
        assert await setup.client.hget(INDEX, run.run_id) == entry  # not acknowledged here
        (pending,) = await setup.client.xpending_range(stream, GROUP, "-", "+", 10)
        assert pending["consumer"] == b"other-replica"


async def test_entries_are_delivered_once_in_order_around_acknowledged_ones(
    setup: Setup,
) -> None:
    queue = setup.queue()
    runs = [await _create(setup.runs, "tenant-a", f"order-{index}") for index in range(4)]
    for run in runs:
        await queue.queued(run)
    first, second = await queue.take("replica", 2)
    await queue.acknowledge(first)  # the oldest done; the second still in progress
    (third,) = await queue.take("replica", 1)
    await queue.acknowledge(third)  # done out of order
    (fourth,) = await queue.take("replica", 1)
    assert [d.run_id for d in (first, second, third, fourth)] == [r.run_id for r in runs]
    assert await queue.take("replica", 1) == []
    assert await queue.depth() == 0


async def test_consumers_of_replicas_long_gone_are_pruned(setup: Setup) -> None:
    queue = setup.queue()
    for index in range(3):
        await queue.queued(await _create(setup.runs, "tenant-a", f"prune-{index}"))
    (gone,) = await queue.take("replica-gone", 1)
    await queue.acknowledge(gone)  # it finished its run, then went away
    (working,) = await queue.take("replica-working", 1)  # holds an entry
    await asyncio.sleep(0.05)

    async def consumers() -> set[str]:
        rows = await setup.client.xinfo_consumers(working.stream, GROUP)
        return {_text(row["name"]) for row in rows}

    assert await queue.prune(idle_seconds=60) == 0  # nobody idle that long
    assert await consumers() == {"replica-gone", "replica-working"}
    assert await queue.prune(idle_seconds=0.01) == 1
    assert await consumers() == {"replica-working"}  # its entry keeps it
    (last,) = await queue.take("replica-gone", 1)  # a pruned replica that reads again is back
    assert await consumers() == {"replica-gone", "replica-working"}
    assert last.run_id not in {gone.run_id, working.run_id}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
