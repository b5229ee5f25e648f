"""RunRepository conformance: runs, event logs and the queue, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from ai_orchestration.errors import ConflictError, FailedPreconditionError, NotFoundError
from ai_orchestration.storage import (
    CREATED_FROM,
    Claimant,
    Database,
    InvalidPageTokenError,
    RunRepository,
    compute_request_digest,
)
from ai_orchestration.workflows import EventKind, RunError, RunEvent, RunRecord, RunState
from tests.storage._support import FakeClock

TENANT = "tenant-a"
OTHER = "tenant-b"
LEAD_INPUT = {"lead_qualification": {"lead": {"lead_id": "lead-42"}, "notes": "met at expo"}}
LEASE = 30.0


@pytest.fixture
def runs(database: Database, clock: FakeClock) -> RunRepository:
    return RunRepository(database=database, clock=clock)


@pytest.fixture
async def replicas(database_url: str, database: Database) -> AsyncIterator[list[Database]]:
    """Two more handles on the same (migrated) database, as other replicas would hold."""
    handles = [Database.from_url(database_url) for _ in range(2)]
    try:
        yield [database, *handles]
    finally:
        await asyncio.gather(*(handle.close() for handle in handles))


async def _start(
    runs: RunRepository,
    request_id: str,
    *,
    tenant: str = TENANT,
    workflow: str = "lead_qualification",
    priority: int = 0,
    body: bytes | None = None,
    appended: list[RunEvent] | None = None,
    trace_parent: str = "",
) -> RunRecord:
    created = await runs.create(
        tenant,
        workflow=workflow,
        workflow_version="1",
        priority=priority,
        request_id=request_id,
        request_digest=compute_request_digest(body or request_id.encode()),
        labels={"source": "test"},
        input=LEAD_INPUT,
        timeout_seconds=60.0,
        trace_parent=trace_parent,
    )
    if appended is not None:  # what the call reports it wrote
        appended.extend(created.events)
    return created.run


async def _kinds(runs: RunRepository, run: RunRecord, tenant: str = TENANT) -> list[str]:
    return [event.kind.value for event in await runs.events_after(tenant, run.run_id, 0, 1000)]


# -- create and idempotency -----------------------------------------------------------------


async def test_create_queues_the_run_with_its_first_event(
    runs: RunRepository, clock: FakeClock
) -> None:
    run = await _start(runs, "req-1", priority=7)

    assert run.state is RunState.QUEUED
    assert (run.priority, run.workflow, run.workflow_version) == (7, "lead_qualification", "1")
    assert run.input == LEAD_INPUT
    assert run.labels == {"source": "test"}
    assert run.created_at == clock.now
    assert (run.last_sequence, run.attempts, run.started_at, run.lease_owner) == (1, 0, None, "")
    assert await runs.get(TENANT, run.run_id) == run
    [event] = await runs.events_after(TENANT, run.run_id, 0, 10)
    assert (event.sequence, event.kind) == (1, EventKind.STATE_CHANGED)
    assert event.payload == {"from": CREATED_FROM, "to": "QUEUED", "reason": ""}


async def test_the_starting_calls_trace_is_kept_with_the_run_for_every_claimer(
    runs: RunRepository,
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    created = await _start(runs, "traced", trace_parent=traceparent)
    assert created.trace_parent == traceparent
    assert (await runs.get(TENANT, created.run_id)).trace_parent == traceparent
    claimed = await runs.claim("w1", lease_seconds=LEASE)
    assert claimed is not None and claimed.trace_parent == traceparent
    untraced = await _start(runs, "untraced")
    assert untraced.trace_parent == ""


async def test_create_with_the_same_request_id_returns_the_same_run(runs: RunRepository) -> None:
    first_call = await runs.create(
        TENANT,
        workflow="lead_qualification",
        workflow_version="1",
        priority=0,
        request_id="req-1",
        request_digest=compute_request_digest(b"body"),
        labels={},
        input=LEAD_INPUT,
        timeout_seconds=60.0,
    )
    again_call = await runs.create(
        TENANT,
        workflow="lead_qualification",
        workflow_version="1",
        priority=0,
        request_id="req-1",
        request_digest=compute_request_digest(b"body"),
        labels={},
        input=LEAD_INPUT,
        timeout_seconds=60.0,
    )

    first, created_first = first_call.run, first_call.created
    again, created_again = again_call.run, again_call.created
    assert (created_first, created_again) == (True, False)
    assert again == first
    assert await _kinds(runs, first) == ["state_changed"]


async def test_request_id_reused_with_another_request_is_a_conflict(runs: RunRepository) -> None:
    run = await _start(runs, "req-1", body=b"lead 42")

    with pytest.raises(ConflictError) as caught:
        await _start(runs, "req-1", body=b"lead 43")

    assert caught.value.reason == "REQUEST_ID_REUSED"
    assert caught.value.metadata["run_id"] == run.run_id
    page, _ = await runs.list(TENANT)
    assert [r.run_id for r in page] == [run.run_id]


async def test_concurrent_creates_with_one_request_id_make_one_run(
    runs: RunRepository, replicas: list[Database], clock: FakeClock
) -> None:
    repos = [RunRepository(database=db, clock=clock) for db in replicas]

    async def create(index: int) -> tuple[RunRecord, bool]:
        created = await repos[index % len(repos)].create(
            TENANT,
            workflow="lead_qualification",
            workflow_version="1",
            priority=0,
            request_id="req-race",
            request_digest=compute_request_digest(b"same"),
            labels={},
            input=LEAD_INPUT,
            timeout_seconds=60.0,
        )
        return created.run, created.created

    outcomes = await asyncio.gather(*(create(i) for i in range(10)))

    assert sum(created for _, created in outcomes) == 1
    assert len({run.run_id for run, _ in outcomes}) == 1
    assert await _kinds(runs, outcomes[0][0]) == ["state_changed"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", 10),
        ("priority", -1),
        ("timeout_seconds", 0.0),
        ("request_digest", "not-a-digest"),
        ("workflow", ""),
    ],
)
async def test_create_rejects_bad_arguments(runs: RunRepository, field: str, value: object) -> None:
    arguments: dict[str, object] = {
        "workflow": "lead_qualification",
        "workflow_version": "1",
        "priority": 0,
        "request_id": "req-1",
        "request_digest": compute_request_digest(b"x"),
        "labels": {},
        "input": LEAD_INPUT,
        "timeout_seconds": 60.0,
        field: value,
    }
    with pytest.raises(ValueError, match=field):
        await runs.create(TENANT, **arguments)  # type: ignore[arg-type]


# -- tenants --------------------------------------------------------------------------------


async def test_tenants_never_see_each_others_runs(runs: RunRepository) -> None:
    mine = await _start(runs, "req-1")
    theirs = await _start(runs, "req-1", tenant=OTHER)  # same request_id, other tenant

    assert mine.run_id != theirs.run_id
    with pytest.raises(NotFoundError):
        await runs.get(OTHER, mine.run_id)
    with pytest.raises(NotFoundError):
        await runs.events_after(OTHER, mine.run_id, 0, 10)
    with pytest.raises(NotFoundError):
        await runs.request_cancel(OTHER, mine.run_id)
    assert [r.run_id for r in (await runs.list(TENANT))[0]] == [mine.run_id]
    assert [r.run_id for r in (await runs.list(OTHER))[0]] == [theirs.run_id]
    assert (await runs.get(TENANT, mine.run_id)).state is RunState.QUEUED


# -- listing ---------------------------------------------------------------------------------


async def test_list_filters_by_workflow_state_and_time(
    runs: RunRepository, clock: FakeClock
) -> None:
    start = clock.now
    lead = await _start(runs, "r1")
    clock.advance(timedelta(minutes=1))
    content = await _start(runs, "r2", workflow="content_generation")
    clock.advance(timedelta(minutes=1))
    later = await _start(runs, "r3")
    claimed = await runs.claim("w1", lease_seconds=LEASE)
    assert claimed is not None
    assert claimed.run_id == lead.run_id

    async def ids(**filters: object) -> list[str]:
        page, token = await runs.list(TENANT, **filters)  # type: ignore[arg-type]
        assert token == ""
        return [run.run_id for run in page]

    assert await ids() == [later.run_id, content.run_id, lead.run_id]
    assert await ids(workflow="lead_qualification") == [later.run_id, lead.run_id]
    assert await ids(states=[RunState.RUNNING]) == [lead.run_id]
    assert await ids(states=[RunState.QUEUED, RunState.SUCCEEDED]) == [
        later.run_id,
        content.run_id,
    ]
    minute = timedelta(minutes=1)
    assert await ids(created_after=start + minute) == [later.run_id, content.run_id]
    assert await ids(created_before=start + minute) == [lead.run_id]
    assert await ids(created_after=start + minute, created_before=start + 2 * minute) == [
        content.run_id
    ]


async def test_list_pages_newest_first_without_gaps_or_repeats(
    runs: RunRepository, clock: FakeClock
) -> None:
    created = []
    for index in range(7):
        created.append(await _start(runs, f"req-{index}"))
        if index % 2:  # pairs share a creation time: the run_id breaks the tie
            clock.advance(timedelta(seconds=1))
    expected = [r.run_id for r in sorted(created, key=lambda r: (r.created_at, r.run_id))][::-1]

    seen: list[str] = []
    token = ""
    for _ in range(10):
        page, token = await runs.list(TENANT, page_size=3, page_token=token)
        seen += [run.run_id for run in page]
        if not token:
            break
    assert seen == expected


async def test_a_page_token_is_bound_to_its_query(runs: RunRepository) -> None:
    for index in range(3):
        await _start(runs, f"req-{index}")
    _, token = await runs.list(TENANT, page_size=1)
    assert token

    with pytest.raises(InvalidPageTokenError):
        await runs.list(TENANT, page_size=1, page_token=token, workflow="content_generation")
    with pytest.raises(InvalidPageTokenError):
        await runs.list(OTHER, page_size=1, page_token=token)
    with pytest.raises(InvalidPageTokenError):
        await runs.list(TENANT, page_size=1, page_token=token[:-2] + "xx")


# -- events ----------------------------------------------------------------------------------


async def test_events_get_consecutive_sequences_and_are_read_in_order(
    runs: RunRepository, database_url: str
) -> None:
    run = await _start(runs, "req-1")
    step = {"step": "lead_analysis", "agent": "lead_analysis_agent"}
    appended = [
        await runs.append_event(run.run_id, EventKind.STEP_STARTED, step),
        await runs.append_event(run.run_id, EventKind.TOKEN_DELTA, {"step": "x", "text": "Hi"}),
    ]

    assert [event.sequence for event in appended] == [2, 3]
    # Durable when append_event returns: another handle (another replica) reads it at once.
    async with Database.from_url(database_url) as elsewhere:
        stored = await RunRepository(database=elsewhere).events_after(TENANT, run.run_id, 1, 10)
    assert stored == appended
    assert await runs.events_after(TENANT, run.run_id, 3, 10) == []
    assert [e.sequence for e in await runs.events_after(TENANT, run.run_id, 0, 2)] == [1, 2]
    assert (await runs.get(TENANT, run.run_id)).last_sequence == 3


async def test_last_sequences_reads_many_runs_of_any_tenant_at_once(runs: RunRepository) -> None:
    first = await _start(runs, "req-1")
    other = await _start(runs, "req-2", tenant="tenant-b")
    await runs.append_event(first.run_id, EventKind.STEP_STARTED, {"step": "a"})
    # More ids than one IN list takes: unknown ids are left out, known ones found in any chunk.
    unknown = [f"no-such-run-{index}" for index in range(1500)]
    asked = [*unknown[:700], other.run_id, *unknown[700:], first.run_id, first.run_id]
    assert await runs.last_sequences(asked) == {first.run_id: 2, other.run_id: 1}
    assert await runs.last_sequences([]) == {}


async def test_concurrent_appenders_never_skip_or_repeat_a_sequence(
    runs: RunRepository, replicas: list[Database], clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    repos = [RunRepository(database=db, clock=clock) for db in replicas]

    async def append(index: int) -> int:
        repo = repos[index % len(repos)]
        event = await repo.append_event(
            run.run_id, EventKind.TOKEN_DELTA, {"step": "s", "text": str(index)}
        )
        return event.sequence

    sequences = await asyncio.gather(*(append(i) for i in range(20)))

    assert sorted(sequences) == list(range(2, 22))
    events = await runs.events_after(TENANT, run.run_id, 0, 100)
    assert [event.sequence for event in events] == list(range(1, 22))
    texts = sorted(int(e.payload["text"]) for e in events if e.kind is EventKind.TOKEN_DELTA)
    assert texts == list(range(20))
    assert (await runs.get(TENANT, run.run_id)).last_sequence == 21


async def test_appending_to_an_unknown_run_is_not_found(runs: RunRepository) -> None:
    with pytest.raises(NotFoundError):
        await runs.append_event("no-such-run", EventKind.USAGE, {"prompt_tokens": 1})


# -- transitions -----------------------------------------------------------------------------


async def test_a_transition_from_an_unexpected_state_changes_nothing(
    runs: RunRepository,
) -> None:
    run = await _start(runs, "req-1")

    with pytest.raises(FailedPreconditionError) as caught:
        await runs.transition(
            run.run_id, to=RunState.SUCCEEDED, expected_from=(RunState.RUNNING,), output={}
        )

    assert caught.value.reason == "RUN_STATE_MISMATCH"
    assert caught.value.metadata["state"] == "QUEUED"
    assert "QUEUED" in caught.value.message
    assert await runs.get(TENANT, run.run_id) == run
    assert await _kinds(runs, run) == ["state_changed"]


async def test_a_run_through_interrupt_resume_and_success(
    runs: RunRepository, clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    claimed = await runs.claim("w1", lease_seconds=LEASE)
    assert claimed is not None
    assert claimed.started_at == clock.now
    interrupt = {"interrupt_id": "i-1", "reasons": ["REASON_HIGH_VALUE"], "proposal": {}}
    clock.advance(timedelta(seconds=5))

    waiting = (
        await runs.transition(
            run.run_id,
            to=RunState.WAITING_FOR_INPUT,
            expected_from=(RunState.RUNNING,),
            reason="waiting for a human",
            pending_interrupt=interrupt,
            worker_id="w1",
        )
    ).run
    assert (waiting.state, waiting.pending_interrupt) == (RunState.WAITING_FOR_INPUT, interrupt)
    assert (waiting.lease_owner, waiting.lease_expires_at) == ("", None)

    answer = {"interrupt_id": "i-1", "decision": "approve"}
    queued = (
        await runs.transition(
            run.run_id,
            to=RunState.QUEUED,
            expected_from=(RunState.WAITING_FOR_INPUT,),
            resume=answer,
        )
    ).run
    assert (queued.pending_interrupt, queued.resume) == (None, answer)

    again = await runs.claim("w2", lease_seconds=LEASE)
    assert again is not None
    assert (again.run_id, again.attempts, again.resume) == (run.run_id, 2, answer)
    assert again.started_at == claimed.started_at  # first start kept

    clock.advance(timedelta(seconds=5))
    output = {"lead_qualification": {"qualification": "QUALIFICATION_QUALIFIED"}}
    done = (
        await runs.transition(
            run.run_id, to=RunState.SUCCEEDED, expected_from=(RunState.RUNNING,), output=output
        )
    ).run
    assert (done.state, done.output, done.ended_at) == (RunState.SUCCEEDED, output, clock.now)
    assert (done.lease_owner, done.lease_expires_at) == ("", None)
    assert done.last_sequence == 6

    changes = [
        (e.payload["from"], e.payload["to"])
        for e in await runs.events_after(TENANT, run.run_id, 0, 100)
    ]
    assert changes == [
        (CREATED_FROM, "QUEUED"),
        ("QUEUED", "RUNNING"),
        ("RUNNING", "WAITING_FOR_INPUT"),
        ("WAITING_FOR_INPUT", "QUEUED"),
        ("QUEUED", "RUNNING"),
        ("RUNNING", "SUCCEEDED"),
    ]


async def test_a_failed_run_keeps_its_error(runs: RunRepository) -> None:
    run = await _start(runs, "req-1")
    await runs.claim("w1", lease_seconds=LEASE)
    error = RunError("FAILED_PRECONDITION", "no scoring model", "NO_MODEL")

    failed = (
        await runs.transition(
            run.run_id, to=RunState.FAILED, expected_from=(RunState.RUNNING,), error=error
        )
    ).run

    assert (failed.state, failed.error) == (RunState.FAILED, error)
    assert (await runs.get(TENANT, run.run_id)).error == error


async def test_a_worker_that_lost_its_lease_cannot_end_the_run(
    runs: RunRepository, clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    await runs.claim("w1", lease_seconds=LEASE)
    clock.advance(timedelta(seconds=LEASE + 1))
    await runs.claim("w2", lease_seconds=LEASE)

    with pytest.raises(FailedPreconditionError) as caught:
        await runs.transition(
            run.run_id,
            to=RunState.SUCCEEDED,
            expected_from=(RunState.RUNNING,),
            output={},
            worker_id="w1",
        )

    assert caught.value.reason == "LEASE_LOST"
    assert (await runs.get(TENANT, run.run_id)).lease_owner == "w2"


async def test_a_transition_stores_its_causing_event_only_when_it_happens(
    runs: RunRepository,
) -> None:
    run = await _start(runs, "req-1")
    failed = {"code": "INTERNAL", "message": "boom", "reason": "X"}
    with pytest.raises(FailedPreconditionError):
        await runs.transition(
            run.run_id,
            to=RunState.FAILED,
            expected_from=(RunState.RUNNING,),  # it is QUEUED
            event=(EventKind.FAILED, failed),
        )
    assert await _kinds(runs, run) == ["state_changed"]

    done = (
        await runs.transition(
            run.run_id,
            to=RunState.CANCELLED,
            expected_from=(RunState.QUEUED,),
            event=(EventKind.FAILED, failed),
        )
    ).run
    events = await runs.events_after(TENANT, run.run_id, 1, 10)
    assert [(e.sequence, e.kind.value) for e in events] == [(2, "failed"), (3, "state_changed")]
    assert events[0].payload == failed and done.last_sequence == 3


async def test_the_events_a_transition_or_claim_reports_are_the_ones_in_the_log(
    runs: RunRepository,
) -> None:
    run = await _start(runs, "req-1")
    claim = await runs.claim_many("w1", 1, lease_seconds=LEASE)
    (claimed,), claimed_events = claim.runs, claim.events
    ended = await runs.transition(
        run.run_id,
        to=RunState.SUCCEEDED,
        expected_from=(RunState.RUNNING,),
        event=(EventKind.COMPLETED, {"output": {"ok": True}}),
    )
    ended_events = ended.events
    log = await runs.events_after(TENANT, run.run_id, 1, 10)
    assert claimed.run_id == run.run_id
    assert [*claimed_events, *ended_events] == log
    assert [e.kind for e in log] == [
        EventKind.STATE_CHANGED,
        EventKind.COMPLETED,
        EventKind.STATE_CHANGED,
    ]
    with pytest.raises(FailedPreconditionError):  # a refused move returns nothing
        await runs.transition(run.run_id, to=RunState.CANCELLED, expected_from=(RunState.RUNNING,))
    assert await runs.events_after(TENANT, run.run_id, 1, 10) == log  # and wrote nothing


async def test_create_reports_the_first_event_of_a_new_run_only(runs: RunRepository) -> None:
    first: list[RunEvent] = []
    run = await _start(runs, "req-1", appended=first)
    assert first == await runs.events_after(TENANT, run.run_id, 0, 10)
    again: list[RunEvent] = []
    assert (await _start(runs, "req-1", appended=again)).run_id == run.run_id
    assert again == []  # the retry wrote nothing


async def _create_claiming(
    runs: RunRepository, request_id: str, *, priority: int = 0
) -> tuple[RunRecord, list[RunRecord], list[RunEvent]]:
    created = await runs.create(
        TENANT,
        workflow="lead_qualification",
        workflow_version="1",
        priority=priority,
        request_id=request_id,
        request_digest=compute_request_digest(request_id.encode()),
        labels={},
        input=LEAD_INPUT,
        timeout_seconds=60.0,
        claim_for=Claimant("w1", LEASE),
    )
    return created.run, created.claimed.runs, [*created.events, *created.claimed.events]


async def test_create_can_claim_the_new_run_in_the_same_transaction(
    runs: RunRepository,
) -> None:
    run, claimed, written = await _create_claiming(runs, "req-1")
    assert run.state is RunState.QUEUED  # the run as created...
    assert [(c.run_id, c.state, c.lease_owner, c.attempts) for c in claimed] == [
        (run.run_id, RunState.RUNNING, "w1", 1)  # ...then claimed
    ]
    assert written == await runs.events_after(TENANT, run.run_id, 0, 10)
    assert [e.payload["to"] for e in written] == ["QUEUED", "RUNNING"]
    assert (await runs.get(TENANT, run.run_id)).state is RunState.RUNNING
    assert await runs.claim("w2", lease_seconds=LEASE) is None

    _, again, rewritten = await _create_claiming(runs, "req-1")  # a retry claims nothing
    assert (again, rewritten) == ([], [])


async def test_create_claims_the_run_that_comes_first_in_the_queue(
    runs: RunRepository, clock: FakeClock
) -> None:
    waiting = await _start(runs, "waiting", priority=5)
    clock.advance(timedelta(seconds=1))
    new, claimed, written = await _create_claiming(runs, "new", priority=1)
    assert [c.run_id for c in claimed] == [waiting.run_id]
    assert [(e.run_id, e.sequence) for e in written] == [(new.run_id, 1), (waiting.run_id, 2)]
    assert (await runs.get(TENANT, new.run_id)).state is RunState.QUEUED
    next_claim = await runs.claim("w2", lease_seconds=LEASE)
    assert next_claim is not None and next_claim.run_id == new.run_id


async def test_transition_rejects_unknown_fields(runs: RunRepository) -> None:
    run = await _start(runs, "req-1")
    with pytest.raises(ValueError, match="unknown fields"):
        await runs.transition(
            run.run_id, to=RunState.CANCELLED, expected_from=(RunState.QUEUED,), colour="red"
        )


# -- the queue -------------------------------------------------------------------------------


async def test_claim_takes_the_highest_priority_then_the_oldest(
    runs: RunRepository, clock: FakeClock
) -> None:
    low = await _start(runs, "low", priority=0)
    clock.advance(timedelta(seconds=1))
    high_old = await _start(runs, "high-old", priority=5)
    clock.advance(timedelta(seconds=1))
    high_new = await _start(runs, "high-new", priority=5)
    clock.advance(timedelta(seconds=1))
    top = await _start(runs, "top", priority=9)

    order = []
    for _ in range(5):
        # One tenant only: fairness between tenants plays no part, so each claim is finished.
        claimed = await runs.claim("w1", lease_seconds=LEASE)
        if claimed is None:
            break
        order.append(claimed.run_id)
        await runs.transition(
            claimed.run_id, to=RunState.SUCCEEDED, expected_from=(RunState.RUNNING,)
        )
    assert order == [top.run_id, high_old.run_id, high_new.run_id, low.run_id]


async def _two_tenants_queued(
    runs: RunRepository, clock: FakeClock
) -> tuple[list[RunRecord], RunRecord]:
    """Three urgent runs of tenant-a (oldest first) and one ordinary run of tenant-b."""
    busy = []
    for index in range(3):
        busy.append(await _start(runs, f"a-{index}", priority=9))
        clock.advance(timedelta(seconds=1))
    return busy, await _start(runs, "b-0", tenant=OTHER, priority=0)


async def test_claim_serves_the_tenant_with_fewest_running_runs_first(
    runs: RunRepository, clock: FakeClock
) -> None:
    busy, quiet = await _two_tenants_queued(runs, clock)

    first = await runs.claim("w1", lease_seconds=LEASE)
    second = await runs.claim("w1", lease_seconds=LEASE)
    third = await runs.claim("w1", lease_seconds=LEASE)

    assert first is not None and second is not None and third is not None
    assert first.run_id == busy[0].run_id  # nobody runs anything: priority decides
    assert second.run_id == quiet.run_id  # tenant-a runs one, tenant-b none
    assert third.run_id == busy[1].run_id
    # A cap per tenant leaves tenant-a's last run queued while it runs two.
    assert await runs.claim("w1", lease_seconds=LEASE, limit_per_tenant=2) is None
    last = await runs.claim("w1", lease_seconds=LEASE, limit_per_tenant=3)
    assert last is not None
    assert last.run_id == busy[2].run_id


async def test_claim_many_takes_runs_in_the_order_of_successive_claims(
    runs: RunRepository, clock: FakeClock
) -> None:
    busy, quiet = await _two_tenants_queued(runs, clock)
    doomed = await _start(runs, "a-cancelled", priority=9)
    await runs.request_cancel(TENANT, doomed.run_id)  # queued: cancelled at once, never claimed

    taken = (await runs.claim_many("w1", 3, lease_seconds=LEASE)).runs

    # Fairness is recomputed after each run of the batch, as with one claim after another.
    assert [run.run_id for run in taken] == [busy[0].run_id, quiet.run_id, busy[1].run_id]
    assert all(run.state is RunState.RUNNING and run.lease_owner == "w1" for run in taken)
    rest = (await runs.claim_many("w1", 5, lease_seconds=LEASE)).runs
    assert [run.run_id for run in rest] == [busy[2].run_id]  # fewer than asked: drained
    assert (await runs.claim_many("w1", 5, lease_seconds=LEASE)).runs == []
    with pytest.raises(ValueError, match="count"):
        await runs.claim_many("w1", 0, lease_seconds=LEASE)


async def test_concurrent_claimers_get_distinct_runs(
    runs: RunRepository, replicas: list[Database], clock: FakeClock
) -> None:
    created = {(await _start(runs, f"req-{i}", tenant=f"t-{i % 3}")).run_id for i in range(10)}
    repos = [RunRepository(database=db, clock=clock) for db in replicas]

    claims = await asyncio.gather(
        *(repos[i % len(repos)].claim(f"worker-{i}", lease_seconds=LEASE) for i in range(10))
    )

    claimed = [run for run in claims if run is not None]
    assert len(claimed) == 10
    assert {run.run_id for run in claimed} == created
    assert all(run.attempts == 1 and run.state is RunState.RUNNING for run in claimed)
    assert {run.lease_owner for run in claimed} == {f"worker-{i}" for i in range(10)}
    assert await runs.claim("late", lease_seconds=LEASE) is None
    for run in claimed:  # exactly one claim each
        assert await _kinds(runs, run, run.tenant_id) == ["state_changed", "state_changed"]


async def test_an_expired_lease_is_claimed_again_with_one_more_attempt(
    runs: RunRepository, clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    first = await runs.claim("w1", lease_seconds=LEASE)
    assert first is not None
    clock.advance(timedelta(seconds=LEASE - 1))
    assert await runs.claim("w2", lease_seconds=LEASE) is None  # w1's lease still holds

    clock.advance(timedelta(seconds=2))
    second = await runs.claim("w2", lease_seconds=LEASE)

    assert second is not None
    assert (second.run_id, second.attempts, second.lease_owner) == (run.run_id, 2, "w2")
    assert second.lease_expires_at == clock.now + timedelta(seconds=LEASE)
    assert second.started_at == first.started_at
    last = (await runs.events_after(TENANT, run.run_id, 2, 10))[-1]
    assert (last.payload["from"], last.payload["to"]) == ("RUNNING", "RUNNING")


async def test_heartbeat_extends_the_lease_until_it_is_lost(
    runs: RunRepository, clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    await runs.claim("w1", lease_seconds=LEASE)
    for _ in range(3):  # kept alive well past one lease
        clock.advance(timedelta(seconds=LEASE / 2))
        assert await runs.heartbeat(run.run_id, "w1", lease_seconds=LEASE)
        assert await runs.claim("w2", lease_seconds=LEASE) is None

    clock.advance(timedelta(seconds=LEASE + 1))
    taken = await runs.claim("w2", lease_seconds=LEASE)
    assert taken is not None

    assert not await runs.heartbeat(run.run_id, "w1", lease_seconds=LEASE)
    assert await runs.heartbeat(run.run_id, "w2", lease_seconds=LEASE)
    assert (await runs.get(TENANT, run.run_id)).lease_owner == "w2"


async def test_one_heartbeat_renews_every_lease_a_worker_holds_and_reports_cancels(
    runs: RunRepository, clock: FakeClock
) -> None:
    theirs = await _start(runs, "req-theirs")
    assert await runs.claim("w2", lease_seconds=LEASE) is not None
    mine = [await _start(runs, f"req-{i}") for i in range(3)]
    for _ in mine:
        assert await runs.claim("w1", lease_seconds=LEASE) is not None
    await runs.request_cancel(TENANT, mine[1].run_id)

    clock.advance(timedelta(seconds=LEASE / 2))
    asked = [run.run_id for run in (*mine, theirs)] + ["no-such-run"]
    held = await runs.heartbeat_many(asked, "w1", lease_seconds=LEASE)

    assert held == {mine[0].run_id: False, mine[1].run_id: True, mine[2].run_id: False}
    for run in mine:
        renewed = await runs.get(TENANT, run.run_id)
        assert renewed.lease_expires_at == clock.now + timedelta(seconds=LEASE)
    untouched = await runs.get(TENANT, theirs.run_id)
    assert untouched.lease_owner == "w2"
    assert untouched.lease_expires_at == clock.now + timedelta(seconds=LEASE / 2)
    assert await runs.heartbeat_many([], "w1", lease_seconds=LEASE) == {}


async def test_a_run_whose_workers_keep_dying_is_dead_lettered(
    runs: RunRepository, clock: FakeClock
) -> None:
    doomed = await _start(runs, "doomed", priority=9)
    for attempt in (1, 2):
        claimed = await runs.claim(f"w{attempt}", lease_seconds=LEASE, max_attempts=2)
        assert claimed is not None
        assert (claimed.run_id, claimed.attempts) == (doomed.run_id, attempt)
        clock.advance(timedelta(seconds=LEASE + 1))
    waiting = await _start(runs, "next", priority=0)

    # The third claim would exceed max_attempts: the run is dead-lettered, the next one taken.
    claimed = await runs.claim("w3", lease_seconds=LEASE, max_attempts=2)

    assert claimed is not None
    assert claimed.run_id == waiting.run_id
    dead = await runs.get(TENANT, doomed.run_id)
    assert dead.state is RunState.DEAD_LETTERED
    assert dead.error is not None
    assert (dead.error.code, dead.error.reason) == ("ABORTED", "MAX_ATTEMPTS_EXCEEDED")
    assert (dead.attempts, dead.ended_at, dead.lease_owner) == (2, clock.now, "")
    events = await runs.events_after(TENANT, doomed.run_id, 3, 10)
    assert [e.kind for e in events] == [EventKind.FAILED, EventKind.STATE_CHANGED]
    assert events[0].payload["reason"] == "MAX_ATTEMPTS_EXCEEDED"
    assert events[1].payload["to"] == "DEAD_LETTERED"
    assert [e.sequence for e in events] == [4, 5] == [dead.last_sequence - 1, dead.last_sequence]


async def test_cancel_ends_a_queued_run_and_flags_a_running_one(
    runs: RunRepository, clock: FakeClock
) -> None:
    running = await _start(runs, "running", priority=9)
    await runs.claim("w1", lease_seconds=LEASE)
    queued = await _start(runs, "queued")

    cancelled = await runs.request_cancel(TENANT, queued.run_id, reason="changed my mind")
    flagged = await runs.request_cancel(TENANT, running.run_id, reason="wrong lead")

    assert (cancelled.state, cancelled.ended_at) == (RunState.CANCELLED, clock.now)
    assert cancelled.cancel_reason == "changed my mind"
    last = (await runs.events_after(TENANT, queued.run_id, 1, 10))[-1]
    assert last.payload == {"from": "QUEUED", "to": "CANCELLED", "reason": "changed my mind"}
    assert (flagged.state, flagged.cancel_requested) == (RunState.RUNNING, True)
    assert flagged.cancel_reason == "wrong lead"
    assert (await runs.get_any(running.run_id)).cancel_requested
    with pytest.raises(FailedPreconditionError) as caught:
        await runs.request_cancel(TENANT, queued.run_id)
    assert caught.value.reason == "RUN_ENDED"

    # Its worker died before it saw the flag: the run is cancelled, not executed again.
    clock.advance(timedelta(seconds=LEASE + 1))
    assert await runs.claim("w2", lease_seconds=LEASE) is None
    ended = await runs.get(TENANT, running.run_id)
    assert (ended.state, ended.cancel_reason) == (RunState.CANCELLED, "wrong lead")
    last = (await runs.events_after(TENANT, running.run_id, 0, 10))[-1]
    assert last.payload == {"from": "RUNNING", "to": "CANCELLED", "reason": "wrong lead"}


async def test_a_worker_ending_a_flagged_run_records_the_callers_reason(
    runs: RunRepository,
) -> None:
    run = await _start(runs, "flagged")
    await runs.claim("w1", lease_seconds=LEASE)
    await runs.request_cancel(TENANT, run.run_id, reason="duplicate")
    change = await runs.transition(
        run.run_id,
        to=RunState.CANCELLED,
        expected_from=(RunState.RUNNING,),
        reason="cancelled",
        worker_id="w1",
    )
    assert change.run.cancel_reason == "duplicate"
    assert change.events[-1].payload["reason"] == "duplicate"


async def test_usage_events_add_up_atomically_in_the_run_totals(
    runs: RunRepository, replicas: list[Database], clock: FakeClock
) -> None:
    run = await _start(runs, "req-1")
    repos = [RunRepository(database=db, clock=clock) for db in replicas]
    usage_event = {"prompt_tokens": 10, "completion_tokens": 3, "cost_usd": 0.25, "model": "m"}

    await asyncio.gather(
        *(
            repos[i % len(repos)].append_event(run.run_id, EventKind.USAGE, usage_event)
            for i in range(8)
        ),
        runs.append_event(run.run_id, EventKind.STEP_STARTED, {"prompt_tokens": 99}),
    )

    stored = await runs.get(TENANT, run.run_id)
    usage = stored.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (80, 24, 2.0)
    assert stored.last_sequence == 1 + 9  # only usage events count, every event is logged


@pytest.mark.parametrize(
    "amounts",
    [
        {"prompt_tokens": -1},
        {"completion_tokens": 1.5},
        {"cost_usd": float("nan")},
        {"cost_usd": -0.01},
        {"prompt_tokens": True},
    ],
)
async def test_a_usage_event_with_bad_amounts_is_refused_and_stores_nothing(
    runs: RunRepository, amounts: dict[str, object]
) -> None:
    run = await _start(runs, "req-1")
    with pytest.raises(ValueError, match="must be"):
        await runs.append_event(run.run_id, EventKind.USAGE, amounts)
    stored = await runs.get(TENANT, run.run_id)
    assert (stored.last_sequence, stored.usage.prompt_tokens) == (1, 0)
