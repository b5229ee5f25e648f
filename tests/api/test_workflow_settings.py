"""WorkflowService settings: each tenant's decision thresholds, used by its next decisions."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeAlias

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc
from google.protobuf.field_mask_pb2 import FieldMask

from ai_orchestration.server import Server
from tests.api._leads import hot_lead, metadata
from tests.api.test_workflows import _error, _until, lead_run
from tests.conftest import TokenFactory
from tests.fixtures.llm_server import LlmTestServer

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = workflow_pb2_grpc.WorkflowServiceAsyncStub
State = workflow_pb2.Run.State
Reason = workflow_pb2.Interrupt.Reason
Action = workflow_pb2.WorkflowSettings.FailedDraftAction
SETTLED = {
    State.STATE_SUCCEEDED,
    State.STATE_FAILED,
    State.STATE_CANCELLED,
    State.STATE_WAITING_FOR_INPUT,
}


@pytest.fixture
async def stub(workflow_server: Server) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(workflow_server.address) as channel:
        yield workflow_pb2_grpc.WorkflowServiceStub(channel)


def _update(paths: list[str], **values: float) -> workflow_pb2.UpdateWorkflowSettingsRequest:
    return workflow_pb2.UpdateWorkflowSettingsRequest(
        settings=workflow_pb2.WorkflowSettings(**values),  # type: ignore[arg-type]
        update_mask=FieldMask(paths=paths),
    )


async def test_a_new_tenant_gets_the_defaults(stub: Stub, token: TokenFactory) -> None:
    settings = await stub.GetWorkflowSettings(
        workflow_pb2.GetWorkflowSettingsRequest(), metadata=metadata(token())
    )
    assert (settings.min_confidence, settings.high_value_deal) == (0.6, 100_000.0)
    assert (settings.clear_margin_points, settings.stale_touch_days) == (15.0, 90)
    assert settings.stale_factor == 0.8


async def test_an_update_changes_the_masked_fields_only_and_only_for_the_caller(
    stub: Stub, token: TokenFactory
) -> None:
    alpha, beta = metadata(token(tenant_id="alpha")), metadata(token(tenant_id="beta"))
    updated = await stub.UpdateWorkflowSettings(
        _update(["min_confidence"], min_confidence=0.9, high_value_deal=5.0), metadata=alpha
    )
    assert (updated.min_confidence, updated.high_value_deal) == (0.9, 100_000.0)
    read = await stub.GetWorkflowSettings(workflow_pb2.GetWorkflowSettingsRequest(), metadata=alpha)
    assert read == updated
    theirs = await stub.GetWorkflowSettings(
        workflow_pb2.GetWorkflowSettingsRequest(), metadata=beta
    )
    assert theirs.min_confidence == 0.6


async def test_bad_settings_name_the_field_and_change_nothing(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token())
    err = await _error(stub.UpdateWorkflowSettings(_update([], min_confidence=1.5), metadata=md))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "settings.min_confidence" in {v.field for v in err.field_violations}
    # 0 passes the message's rules (unset) but not the threshold's range once it is masked.
    err = await _error(stub.UpdateWorkflowSettings(_update(["high_value_deal"]), metadata=md))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in err.field_violations} == {"settings.high_value_deal"}
    err = await _error(stub.UpdateWorkflowSettings(_update(["tone"]), metadata=md))
    assert (err.code, err.field_violations[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "update_mask.paths",
    )
    unchanged = await stub.GetWorkflowSettings(
        workflow_pb2.GetWorkflowSettingsRequest(), metadata=md
    )
    assert unchanged.min_confidence == 0.6 and unchanged.high_value_deal == 100_000.0


async def test_only_a_workflow_admin_changes_settings(stub: Stub, token: TokenFactory) -> None:
    operator = metadata(token(roles=["workflow.operator"]))
    await stub.GetWorkflowSettings(workflow_pb2.GetWorkflowSettingsRequest(), metadata=operator)
    err = await _error(
        stub.UpdateWorkflowSettings(
            _update(["min_confidence"], min_confidence=0.1), metadata=operator
        )
    )
    assert err.code is grpc.StatusCode.PERMISSION_DENIED
    admin = metadata(token(roles=["workflow.admin"]))
    await stub.UpdateWorkflowSettings(
        _update(["min_confidence"], min_confidence=0.1), metadata=admin
    )


async def test_each_tenants_thresholds_decide_its_hand_offs(
    stub: Stub, token: TokenFactory
) -> None:
    cautious, trusting = (
        metadata(token(tenant_id="cautious")),
        metadata(token(tenant_id="trusting")),
    )
    # The same hot lead and its 50k deal: one tenant wants a human above 10k (the default is
    # 100k), the other never for confidence and only above an unreachable deal value.
    await stub.UpdateWorkflowSettings(
        _update(["high_value_deal"], high_value_deal=10_000.0), metadata=cautious
    )
    await stub.UpdateWorkflowSettings(
        _update(["min_confidence", "high_value_deal"], min_confidence=0.0, high_value_deal=1e15),
        metadata=trusting,
    )
    lead = hot_lead("settings-hot-1")
    lead.estimated_deal_value = 50_000.0

    asked = await stub.StartRun(lead_run(lead), metadata=cautious)
    run = await _until(stub, cautious, asked.run_id, SETTLED)
    assert run.state == State.STATE_WAITING_FOR_INPUT
    assert Reason.REASON_HIGH_VALUE in run.pending_interrupt.reasons

    trusted = await stub.StartRun(lead_run(lead), metadata=trusting)
    run = await _until(stub, trusting, trusted.run_id, SETTLED)
    assert run.state == State.STATE_SUCCEEDED, run
    assert run.output.lead_qualification.delivered


async def test_a_failing_draft_is_held_for_review_by_default(
    stub: Stub, token: TokenFactory
) -> None:
    settings = await stub.GetWorkflowSettings(
        workflow_pb2.GetWorkflowSettingsRequest(), metadata=metadata(token())
    )
    assert settings.failed_draft_action == Action.FAILED_DRAFT_ACTION_HOLD_FOR_REVIEW


async def test_the_failed_draft_action_is_the_callers_tenants_and_unset_means_the_default(
    stub: Stub, token: TokenFactory
) -> None:
    alpha, beta = metadata(token(tenant_id="alpha")), metadata(token(tenant_id="beta"))
    template = Action.FAILED_DRAFT_ACTION_USE_TEMPLATE
    updated = await stub.UpdateWorkflowSettings(
        _update(["failed_draft_action"], failed_draft_action=template, min_confidence=0.1),
        metadata=alpha,
    )
    assert updated.failed_draft_action == template and updated.min_confidence == 0.6
    read = await stub.GetWorkflowSettings(workflow_pb2.GetWorkflowSettingsRequest(), metadata=alpha)
    assert read == updated
    theirs = await stub.GetWorkflowSettings(
        workflow_pb2.GetWorkflowSettingsRequest(), metadata=beta
    )
    assert theirs.failed_draft_action == Action.FAILED_DRAFT_ACTION_HOLD_FOR_REVIEW
    # Unset (0) in the mask is the default, as for a tenant that never chose.
    reset = await stub.UpdateWorkflowSettings(_update(["failed_draft_action"]), metadata=alpha)
    assert reset.failed_draft_action == Action.FAILED_DRAFT_ACTION_HOLD_FOR_REVIEW
    read = await stub.GetWorkflowSettings(workflow_pb2.GetWorkflowSettingsRequest(), metadata=alpha)
    assert read == reset


LOUD_PARTS = {
    # Each part passes on its own; together they have two words in capitals (shouting).
    # message may have (the tone check of the whole draft).
    "subject": "Our product webinar on Thursday",
    "goal": "I would like to invite you to our product webinar on THURSDAY.",
    "points": "It brings a LIVE demo of the new reports and takes 30 minutes.",
}


async def test_under_use_template_a_failing_draft_is_replaced_by_the_template(
    stub: Stub, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    md = metadata(token(tenant_id="templated"))
    await stub.UpdateWorkflowSettings(
        _update(
            ["failed_draft_action"], failed_draft_action=Action.FAILED_DRAFT_ACTION_USE_TEMPLATE
        ),
        metadata=md,
    )
    llm_server.reply_with(json.dumps(LOUD_PARTS))
    run = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        content_generation=workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(name="Ada Lovelace", company="Analytical Engines"),
            purpose="invite her to the product webinar on Thursday",
            channel=workflow_pb2.CHANNEL_EMAIL,
            tone=workflow_pb2.TONE_FORMAL,
            key_points=["live demo of the new reports", "30 minutes"],
        ),
    )
    request = workflow_pb2.StreamRunRequest(run=run)
    events = [e async for e in stub.StreamRun(request, metadata=md)]
    assert events[-1].state_changed.to == State.STATE_SUCCEEDED
    assert not any(e.HasField("interrupt_raised") for e in events)
    output = next(e.completed for e in events if e.HasField("completed")).content_generation
    # The model answered once with parts that were all kept; the draft they made was replaced.
    assert sum(r.path == "/v1/chat/completions" for r in llm_server.requests) == 1
    assert "THURSDAY" not in output.draft.body and not output.draft.failed_checks
    assert "I'd like to invite you to the product webinar on Thursday." in output.draft.body
    assert "- live demo of the new reports\n- 30 minutes" in output.draft.body
    assert list(output.degraded_steps) == ["content"] and output.delivered
