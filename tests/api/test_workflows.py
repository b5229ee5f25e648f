"""WorkflowService over real gRPC: runs that stream, pause for humans, resume, cancel and list.

A real server (SQLite, in-process queue) whose LLM gateway talks to the real OpenAI-compatible
test server; every run executes the real LangGraph graphs with the SQLite checkpointer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, workflow_pb2, workflow_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf.duration_pb2 import Duration

from ai_orchestration.server import Server
from tests.api._leads import hot_lead, metadata
from tests.conftest import TokenFactory
from tests.fixtures.llm_server import LlmTestServer

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = workflow_pb2_grpc.WorkflowServiceAsyncStub
State = workflow_pb2.Run.State
TERMINAL = {State.STATE_SUCCEEDED, State.STATE_FAILED, State.STATE_CANCELLED}


@pytest.fixture
async def stub(workflow_server: Server) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(workflow_server.address) as channel:
        yield workflow_pb2_grpc.WorkflowServiceStub(channel)


def content_run(*, approval: bool = False, request_id: str = "") -> workflow_pb2.StartRunRequest:
    return workflow_pb2.StartRunRequest(
        request_id=request_id or str(uuid.uuid4()),
        content_generation=workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(name="Ada Lovelace", company="Analytical Engines"),
            purpose="invite to the product webinar",
            channel=workflow_pb2.CHANNEL_EMAIL,
            key_points=["live demo", "Q&A with the founders"],
            require_approval=approval,
        ),
    )


MERGE_FIELD_POINT = "{discount} off a 2-year term"
"""A key point with an unfilled merge field: the model's points sentence cannot say it and the
template repeats it, so the draft fails the placeholder check."""
GOOD_PARTS = {
    "subject": "Our product webinar on Thursday",
    "goal": "I would like to invite you to our product webinar on Thursday.",
}
"""The model's answer to every call (it leaves the points out: they come from the template)."""


def merge_field_run() -> workflow_pb2.StartRunRequest:
    return workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        content_generation=workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(
                name="Ada Lovelace", company="Analytical Engines", email="ada@ae.io"
            ),
            purpose="invite her to the product webinar on Thursday",
            channel=workflow_pb2.CHANNEL_EMAIL,
            key_points=[MERGE_FIELD_POINT],
        ),
    )


def lead_run(lead: scoring_pb2.Lead, notes: str = "") -> workflow_pb2.StartRunRequest:
    return workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        lead_qualification=workflow_pb2.LeadQualificationInput(lead=lead, notes=notes),
    )


async def _error(call: object) -> ServiceError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return ServiceError.from_rpc_error(caught.value)


async def _events(
    stub: Stub, md: object, run_id: str, after: int = 0
) -> list[workflow_pb2.RunEvent]:
    request = workflow_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
    return [e async for e in stub.WatchRun(request, metadata=md)]  # type: ignore[arg-type]


async def _until(
    stub: Stub, md: object, run_id: str, states: set[workflow_pb2.Run.State.ValueType]
) -> workflow_pb2.Run:
    while True:
        run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)  # type: ignore[arg-type]
        if run.state in states:
            return run
        await asyncio.sleep(0.05)


async def test_list_workflows_names_their_types(stub: Stub, token: TokenFactory) -> None:
    listed = await stub.ListWorkflows(
        workflow_pb2.ListWorkflowsRequest(), metadata=metadata(token(roles=["workflow.reader"]))
    )
    by_name = {w.name: w for w in listed.workflows}
    assert {"lead_qualification", "content_generation"} <= set(by_name)
    assert by_name["content_generation"].input_type == "crm.ai.v1.ContentGenerationInput"
    assert by_name["lead_qualification"].interruptible


async def test_stream_run_streams_every_event_in_order_and_completes(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token())
    request = workflow_pb2.StreamRunRequest(run=content_run())
    events = [e async for e in stub.StreamRun(request, metadata=md)]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "state_changed" and events[0].state_changed.to == State.STATE_QUEUED
    assert "step_started" in kinds and "step_finished" in kinds and "usage" in kinds
    assert kinds[-2:] == ["completed", "state_changed"]
    assert events[-1].state_changed.to == State.STATE_SUCCEEDED
    # The content step streams the text of its answer between its start and its end.
    content = [i for i, e in enumerate(events) if e.token_delta.step == "content"]
    started = next(i for i, e in enumerate(events) if e.step_started.step == "content")
    finished = next(i for i, e in enumerate(events) if e.step_finished.step == "content")
    assert content and started < content[0] and content[-1] < finished
    assert all(events[i].token_delta.attempt == 0 for i in content[:1])
    output = events[-2].completed.content_generation
    assert output.draft.body and output.delivered and not output.approved
    run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=events[0].run_id), metadata=md)
    assert run.state == State.STATE_SUCCEEDED and run.last_sequence == events[-1].sequence
    assert run.output.content_generation.draft.body == output.draft.body
    assert run.usage.total_tokens > 0 and run.attempts == 1
    assert llm_server.requests  # the content agent really called the LLM


async def test_start_run_is_idempotent_on_request_id(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token())
    request = content_run()
    first = await stub.StartRun(request, metadata=md)
    again = await stub.StartRun(request, metadata=md)
    assert again.run_id == first.run_id
    changed = content_run(request_id=request.request_id, approval=True)
    err = await _error(stub.StartRun(changed, metadata=md))
    assert (err.code, err.reason) == (grpc.StatusCode.ABORTED, "REQUEST_ID_REUSED")
    await _until(stub, md, first.run_id, TERMINAL)


async def test_approval_interrupt_then_resume(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token())
    events = [
        e
        async for e in stub.StreamRun(
            workflow_pb2.StreamRunRequest(run=content_run(approval=True)), metadata=md
        )
    ]
    # StreamRun ends when the run waits for a human.
    assert events[-1].state_changed.to == State.STATE_WAITING_FOR_INPUT
    raised = next(e.interrupt_raised for e in events if e.HasField("interrupt_raised"))
    assert list(raised.reasons) == [workflow_pb2.Interrupt.REASON_APPROVAL_REQUESTED]
    run_id = events[0].run_id
    run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    assert run.pending_interrupt.interrupt_id == raised.interrupt_id
    assert run.pending_interrupt.proposal.draft.body

    wrong = workflow_pb2.ResumeRunRequest(
        run_id=run_id, interrupt_id="not-it", approve=workflow_pb2.Approval()
    )
    err = await _error(stub.ResumeRun(wrong, metadata=md))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["interrupt_id"]

    edited = workflow_pb2.OutreachDraft(
        subject="Join our webinar", body="Hi Ada, join us live.", channel=workflow_pb2.CHANNEL_EMAIL
    )
    resumed = await stub.ResumeRun(
        workflow_pb2.ResumeRunRequest(
            run_id=run_id, interrupt_id=raised.interrupt_id, edit=workflow_pb2.Edit(draft=edited)
        ),
        metadata=md,
    )
    assert resumed.state == State.STATE_QUEUED
    done = await _until(stub, md, run_id, TERMINAL)
    assert done.state == State.STATE_SUCCEEDED
    output = done.output.content_generation
    assert (output.draft.body, output.approved, output.delivered) == (edited.body, True, True)
    again = await _error(stub.ResumeRun(wrong, metadata=md))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RUN_NOT_WAITING")


async def _held(
    stub: Stub, md: object, llm_server: LlmTestServer
) -> tuple[str, workflow_pb2.Interrupt]:
    """Stream a run whose draft fails the placeholder check until it waits for a human."""
    llm_server.reply_with(json.dumps(GOOD_PARTS))
    request = workflow_pb2.StreamRunRequest(run=merge_field_run())
    events = [e async for e in stub.StreamRun(request, metadata=md)]  # type: ignore[arg-type]
    assert events[-1].state_changed.to == State.STATE_WAITING_FOR_INPUT
    raised = next(e.interrupt_raised for e in events if e.HasField("interrupt_raised"))
    assert not any(e.HasField("completed") for e in events)
    return events[0].run_id, raised


async def test_a_draft_failing_its_checks_is_held_and_no_answer_delivers_it_unchecked(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token())
    run_id, raised = await _held(stub, md, llm_server)
    assert list(raised.reasons) == [workflow_pb2.Interrupt.REASON_DRAFT_FAILED_CHECKS]
    failed = raised.proposal.draft.failed_checks
    assert [c.check for c in failed] == ["placeholder"] and "{discount}" in failed[0].message
    assert list(raised.proposal.draft.issues) == [failed[0].message]
    assert "fails checks (placeholder)" in raised.proposal.rationale
    held = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    assert held.state == State.STATE_WAITING_FOR_INPUT and not held.HasField("output")
    assert held.pending_interrupt == raised
    assert MERGE_FIELD_POINT in held.pending_interrupt.proposal.draft.body

    # Approving the draft as it is needs the explicit override, naming each failed check.
    approve = workflow_pb2.ResumeRunRequest(
        run_id=run_id, interrupt_id=raised.interrupt_id, approve=workflow_pb2.Approval()
    )
    err = await _error(stub.ResumeRun(approve, metadata=md))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DRAFT_FAILS_CHECKS")
    assert [(v.field, v.reason) for v in err.field_violations] == [
        ("approve.override_failed_checks", "placeholder")
    ]
    # An edit that still has a placeholder is refused the same way.
    edit = workflow_pb2.ResumeRunRequest(
        run_id=run_id,
        interrupt_id=raised.interrupt_id,
        edit=workflow_pb2.Edit(draft=workflow_pb2.OutreachDraft(body="Hello Ada, [Name] here.")),
    )
    err = await _error(stub.ResumeRun(edit, metadata=md))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DRAFT_FAILS_CHECKS")
    assert [(v.field, v.reason) for v in err.field_violations] == [
        ("edit.draft.body", "placeholder")
    ]
    # Neither answer changed the run.
    still = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    assert still.state == State.STATE_WAITING_FOR_INPUT and not still.HasField("output")
    assert still.pending_interrupt == raised and still.last_sequence == held.last_sequence


async def test_an_override_delivers_the_held_draft_and_records_who_approved_it(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token(sub="reviewer-7"))
    run_id, raised = await _held(stub, md, llm_server)
    comment = "the discount is filled in by the mail merge"
    resumed = await stub.ResumeRun(
        workflow_pb2.ResumeRunRequest(
            run_id=run_id,
            interrupt_id=raised.interrupt_id,
            approve=workflow_pb2.Approval(comment=comment, override_failed_checks=True),
        ),
        metadata=md,
    )
    assert resumed.state == State.STATE_QUEUED
    done = await _until(stub, md, run_id, TERMINAL)
    assert done.state == State.STATE_SUCCEEDED
    output = done.output.content_generation
    assert output.delivered and output.approved
    assert output.draft.body == raised.proposal.draft.body  # delivered as it was proposed
    assert [c.check for c in output.draft.failed_checks] == ["placeholder"]
    override = output.draft.override
    assert list(override.checks) == ["placeholder"] and override.comment == comment
    assert override.approved_by == "reviewer-7"  # the subject of the approver's token
    given = override.override_time.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - given) < timedelta(minutes=1)
    events = await _events(stub, md, run_id)
    changes = [e.state_changed for e in events if e.HasField("state_changed")]
    resumes = [  # "from" is a Python keyword
        (c.to, c.reason) for c in changes if getattr(c, "from") == State.STATE_WAITING_FOR_INPUT
    ]
    assert resumes == [
        (State.STATE_QUEUED, "resumed: approve with an override of failed checks: placeholder")
    ]
    assert changes[-1].to == State.STATE_SUCCEEDED


async def test_reject_delivers_nothing(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token())
    run = await stub.StartRun(content_run(approval=True), metadata=md)
    waiting = await _until(stub, md, run.run_id, {State.STATE_WAITING_FOR_INPUT, *TERMINAL})
    await stub.ResumeRun(
        workflow_pb2.ResumeRunRequest(
            run_id=run.run_id,
            interrupt_id=waiting.pending_interrupt.interrupt_id,
            reject=workflow_pb2.Rejection(reason="off-brand"),
        ),
        metadata=md,
    )
    done = await _until(stub, md, run.run_id, TERMINAL)
    assert done.state == State.STATE_SUCCEEDED
    assert not done.output.content_generation.delivered
    assert not done.output.content_generation.approved


async def test_watch_run_resumes_after_any_sequence_without_gap_or_duplicate(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token())
    run = await stub.StartRun(content_run(), metadata=md)
    everything = await _events(stub, md, run.run_id)
    assert [e.sequence for e in everything] == list(range(1, len(everything) + 1))
    for k in (1, len(everything) // 2, len(everything) - 1, len(everything)):
        tail = await _events(stub, md, run.run_id, after=k)
        assert [e.sequence for e in tail] == list(range(k + 1, len(everything) + 1))
        assert [e.SerializeToString() for e in tail] == [
            e.SerializeToString() for e in everything[k:]
        ]


async def test_a_disconnected_stream_does_not_cancel_the_run(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token())
    call = stub.StreamRun(workflow_pb2.StreamRunRequest(run=content_run()), metadata=md)
    first = await call.read()
    call.cancel()
    assert isinstance(first, workflow_pb2.RunEvent)
    done = await _until(stub, md, first.run_id, TERMINAL)
    assert done.state == State.STATE_SUCCEEDED


async def test_cancel_stops_a_running_run(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token())
    llm_server.set_latency(30.0)  # every LLM call hangs: the run stays RUNNING
    run = await stub.StartRun(content_run(), metadata=md)
    await _until(stub, md, run.run_id, {State.STATE_RUNNING})
    watching = asyncio.create_task(_events(stub, md, run.run_id))  # attached before the cancel
    cancelled = await stub.CancelRun(
        workflow_pb2.CancelRunRequest(run_id=run.run_id, reason="changed my mind"), metadata=md
    )
    assert cancelled.run_id == run.run_id
    assert cancelled.cancel_reason == "changed my mind"
    done = await _until(stub, md, run.run_id, TERMINAL)
    assert done.state == State.STATE_CANCELLED
    assert done.cancel_reason == "changed my mind"
    # The worker that stopped the run says the caller's reason, live and on replay.
    for events in (await watching, await _events(stub, md, run.run_id)):
        last = events[-1].state_changed
        assert (last.to, last.reason) == (State.STATE_CANCELLED, "changed my mind")
    err = await _error(
        stub.CancelRun(workflow_pb2.CancelRunRequest(run_id=run.run_id), metadata=md)
    )
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RUN_ENDED")


async def test_cancel_without_a_reason_says_so_and_a_long_reason_is_invalid(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token())
    llm_server.set_latency(30.0)
    run = await stub.StartRun(content_run(), metadata=md)
    err = await _error(
        stub.CancelRun(
            workflow_pb2.CancelRunRequest(run_id=run.run_id, reason="x" * 1025), metadata=md
        )
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["reason"]
    assert (
        await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run.run_id), metadata=md)
    ).state in {
        State.STATE_QUEUED,
        State.STATE_RUNNING,
    }

    await stub.CancelRun(workflow_pb2.CancelRunRequest(run_id=run.run_id), metadata=md)
    done = await _until(stub, md, run.run_id, TERMINAL)
    assert (done.state, done.cancel_reason) == (State.STATE_CANCELLED, "cancelled by caller")
    last = (await _events(stub, md, run.run_id))[-1].state_changed
    assert last.reason == "cancelled by caller"


async def test_a_run_past_its_timeout_is_cancelled_with_deadline_exceeded(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token())
    llm_server.set_latency(30.0)
    request = content_run()
    request.timeout.CopyFrom(Duration(seconds=1))
    run = await stub.StartRun(request, metadata=md)
    events = await _events(stub, md, run.run_id)
    failed = next(e.failed for e in events if e.HasField("failed"))
    assert failed.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert events[-1].state_changed.to == State.STATE_CANCELLED


async def test_list_runs_filters_and_pages(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token(tenant_id="lister"))
    started = [await stub.StartRun(content_run(), metadata=md) for _ in range(3)]
    for run in started:
        await _until(stub, md, run.run_id, TERMINAL)
    page = await stub.ListRuns(workflow_pb2.ListRunsRequest(page_size=2), metadata=md)
    rest = await stub.ListRuns(
        workflow_pb2.ListRunsRequest(page_size=2, page_token=page.next_page_token), metadata=md
    )
    listed = [r.run_id for r in [*page.runs, *rest.runs]]
    assert listed == [r.run_id for r in reversed(started)] and not rest.next_page_token
    none = await stub.ListRuns(
        workflow_pb2.ListRunsRequest(workflow="lead_qualification"), metadata=md
    )
    assert not none.runs
    succeeded = await stub.ListRuns(
        workflow_pb2.ListRunsRequest(states=[State.STATE_SUCCEEDED]), metadata=md
    )
    assert len(succeeded.runs) == 3


async def test_tenants_never_see_each_others_runs(stub: Stub, token: TokenFactory) -> None:
    mine, theirs = metadata(token(tenant_id="alpha")), metadata(token(tenant_id="beta"))
    run = await stub.StartRun(content_run(), metadata=mine)
    err = await _error(stub.GetRun(workflow_pb2.GetRunRequest(run_id=run.run_id), metadata=theirs))
    assert err.code is grpc.StatusCode.NOT_FOUND
    err = await _error(
        stub.CancelRun(workflow_pb2.CancelRunRequest(run_id=run.run_id), metadata=theirs)
    )
    assert err.code is grpc.StatusCode.NOT_FOUND
    listed = await stub.ListRuns(workflow_pb2.ListRunsRequest(), metadata=theirs)
    assert run.run_id not in {r.run_id for r in listed.runs}
    await _until(stub, mine, run.run_id, TERMINAL)


async def test_roles_and_a_follow_up_without_interactions(stub: Stub, token: TokenFactory) -> None:
    reader = metadata(token(roles=["workflow.reader"]))
    err = await _error(stub.StartRun(content_run(), metadata=reader))
    assert err.code is grpc.StatusCode.PERMISSION_DENIED
    follow_up = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        customer_follow_up=workflow_pb2.CustomerFollowUpInput(customer_id="C-1"),
    )
    md = metadata(token())
    run = await stub.StartRun(follow_up, metadata=md)
    done = await _until(stub, md, run.run_id, TERMINAL)
    assert done.state == State.STATE_SUCCEEDED
    output = done.output.customer_follow_up
    assert not output.delivered and output.interaction_count == 0


async def test_invalid_requests_name_the_field(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token())
    err = await _error(
        stub.StartRun(workflow_pb2.StartRunRequest(request_id="not-a-uuid"), metadata=md)
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in {v.field for v in err.field_violations}
    err = await _error(
        stub.GetRun(workflow_pb2.GetRunRequest(run_id=str(uuid.uuid4())), metadata=md)
    )
    assert err.code is grpc.StatusCode.NOT_FOUND


async def test_lead_qualification_end_to_end(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token())
    hot = hot_lead("wf-hot-1")
    events = [
        e
        async for e in stub.StreamRun(workflow_pb2.StreamRunRequest(run=lead_run(hot)), metadata=md)
    ]
    steps = [e.step_started.step for e in events if e.HasField("step_started")]
    assert steps[:2] == ["lead_analysis", "decision"]
    assert any(e.HasField("tool_call") for e in events)
    assert any(e.token_delta.step == "lead_analysis" for e in events)  # the analysis streams
    run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=events[0].run_id), metadata=md)
    if run.state == State.STATE_WAITING_FOR_INPUT:  # the rules asked a human: approve
        await stub.ResumeRun(
            workflow_pb2.ResumeRunRequest(
                run_id=run.run_id,
                interrupt_id=run.pending_interrupt.interrupt_id,
                approve=workflow_pb2.Approval(),
            ),
            metadata=md,
        )
        run = await _until(stub, md, run.run_id, TERMINAL)
    assert run.state == State.STATE_SUCCEEDED
    output = run.output.lead_qualification
    assert output.score.lead_id == "wf-hot-1" and output.score.score >= 75
    assert output.qualification == workflow_pb2.QUALIFICATION_QUALIFIED
    assert output.draft.body and output.delivered


async def test_the_engine_gauges_are_exported(workflow_server: Server, token: TokenFactory) -> None:
    registry = workflow_server.metrics.registry
    async with grpc.aio.insecure_channel(workflow_server.address) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        request = workflow_pb2.StreamRunRequest(run=content_run())
        events = [e async for e in stub.StreamRun(request, metadata=metadata(token()))]
    assert events[-1].state_changed.to == State.STATE_SUCCEEDED
    executing = [registry.get_sample_value("aio_workflow_runs_executing")]
    for _ in range(100):  # the run's task ends just after its last event (acknowledging it)
        if executing[-1] == 0:
            break
        await asyncio.sleep(0.02)
        executing.append(registry.get_sample_value("aio_workflow_runs_executing"))
    assert executing[-1] == 0 and set(executing) <= {0, 1}
    assert registry.get_sample_value("aio_workflow_queue_depth") == 0
