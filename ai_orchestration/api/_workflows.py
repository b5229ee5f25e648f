"""WorkflowService: a thin adapter from ``crm.ai.v1`` messages onto the run engine.

Authentication, roles, request validation and error mapping happen in the interceptor. A
client that disconnects from StreamRun or WatchRun only ends its stream: the run goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from typing import Final

import grpc.aio
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc
from google.protobuf.message import Message

from ai_orchestration.api._validation import bad_page_token, masked_paths
from ai_orchestration.security import current_principal
from ai_orchestration.storage import (
    InvalidPageTokenError,
    RunChange,
    RunRepository,
    compute_request_digest,
)
from ai_orchestration.wire.workflows import (
    document,
    event_message,
    resume_answer,
    run_message,
    state_from_proto,
    workflow_message,
)
from ai_orchestration.workflows import WorkflowDefinition
from ai_orchestration.workflows.engine import RunEngine
from ai_orchestration.workflows.graphs import DecisionPolicy, DecisionPolicyStore, checked_policy

Context = grpc.aio.ServicerContext[Message, Message]
DEFAULT_PAGE_SIZE: Final[int] = 50
_SETTINGS_FIELDS: Final[tuple[str, ...]] = tuple(
    workflow_pb2.WorkflowSettings.DESCRIPTOR.fields_by_name
)
_ACTION_FIELD: Final = "failed_draft_action"
_THRESHOLDS: Final[tuple[str, ...]] = tuple(f for f in _SETTINGS_FIELDS if f != _ACTION_FIELD)
_ACTION_PREFIX: Final = "FAILED_DRAFT_ACTION_"


def _settings_message(policy: DecisionPolicy) -> workflow_pb2.WorkflowSettings:
    action = _ACTION_PREFIX + policy.failed_draft_action.upper()
    return workflow_pb2.WorkflowSettings(
        min_confidence=policy.min_confidence,
        high_value_deal=policy.high_value_deal,
        clear_margin_points=policy.clear_margin_points,
        stale_touch_days=policy.stale_touch_days,
        stale_factor=policy.stale_factor,
        failed_draft_action=workflow_pb2.WorkflowSettings.FailedDraftAction.Value(action),
    )


def _action_of(settings: workflow_pb2.WorkflowSettings) -> str:
    """The core's name of the failed-draft action ("" for unset: the default)."""
    if not settings.failed_draft_action:
        return ""
    name = workflow_pb2.WorkflowSettings.FailedDraftAction.Name(settings.failed_draft_action)
    return name.removeprefix(_ACTION_PREFIX).lower()


class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    """Serves ``crm.ai.v1.WorkflowService`` from a :class:`RunEngine`."""

    def __init__(
        self,
        *,
        engine: RunEngine,
        runs: RunRepository,
        definitions: Mapping[str, WorkflowDefinition],
        policies: DecisionPolicyStore,
    ) -> None:
        """``engine`` starts, watches, cancels and resumes runs; ``runs`` lists them;
        ``definitions`` are the workflows this server runs."""
        self.engine = engine
        self.runs = runs
        self.definitions = definitions
        self.policies = policies

    async def ListWorkflows(
        self, request: workflow_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_pb2.ListWorkflowsResponse:
        definitions = sorted(self.definitions.values(), key=lambda d: d.name)
        return workflow_pb2.ListWorkflowsResponse(
            workflows=[workflow_message(d) for d in definitions]
        )

    async def _start(self, request: workflow_pb2.StartRunRequest) -> RunChange:
        workflow = request.WhichOneof("input")
        assert workflow is not None  # the oneof is required by validation
        return await self.engine.start_run(
            current_principal().tenant_id,
            workflow=workflow,
            input_document=document(getattr(request, workflow)),
            request_id=request.request_id,
            request_digest=compute_request_digest(request.SerializeToString(deterministic=True)),
            priority=request.priority,
            labels=dict(request.labels),
            timeout_seconds=(
                request.timeout.ToTimedelta().total_seconds()
                if request.HasField("timeout")
                else 0.0
            ),
        )

    async def StartRun(
        self, request: workflow_pb2.StartRunRequest, context: Context
    ) -> workflow_pb2.Run:
        return run_message((await self._start(request)).run)

    async def StreamRun(
        self, request: workflow_pb2.StreamRunRequest, context: Context
    ) -> AsyncIterator[workflow_pb2.RunEvent]:
        started = await self._start(request.run)  # with a new run's first event: no read
        run = started.run
        async for event in self.engine.watch(
            current_principal().tenant_id,
            run.run_id,
            until_waiting=True,
            run=run,
            known=started.events,
        ):
            yield event_message(event)

    async def WatchRun(
        self, request: workflow_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[workflow_pb2.RunEvent]:
        async for event in self.engine.watch(
            current_principal().tenant_id, request.run_id, after_sequence=request.after_sequence
        ):
            yield event_message(event)

    async def GetRun(
        self, request: workflow_pb2.GetRunRequest, context: Context
    ) -> workflow_pb2.Run:
        return run_message(await self.engine.get(current_principal().tenant_id, request.run_id))

    async def ListRuns(
        self, request: workflow_pb2.ListRunsRequest, context: Context
    ) -> workflow_pb2.ListRunsResponse:
        try:
            runs, token = await self.runs.list(
                current_principal().tenant_id,
                workflow=request.workflow,
                states=[state_from_proto(s) for s in request.states],
                created_after=(
                    request.create_time_after.ToDatetime(tzinfo=UTC)
                    if request.HasField("create_time_after")
                    else None
                ),
                created_before=(
                    request.create_time_before.ToDatetime(tzinfo=UTC)
                    if request.HasField("create_time_before")
                    else None
                ),
                page_size=request.page_size or DEFAULT_PAGE_SIZE,
                page_token=request.page_token,
            )
        except InvalidPageTokenError as error:
            raise bad_page_token(error) from error
        return workflow_pb2.ListRunsResponse(
            runs=[run_message(r) for r in runs], next_page_token=token
        )

    async def CancelRun(
        self, request: workflow_pb2.CancelRunRequest, context: Context
    ) -> workflow_pb2.Run:
        run = await self.engine.cancel(
            current_principal().tenant_id, request.run_id, request.reason
        )
        return run_message(run)

    async def ResumeRun(
        self, request: workflow_pb2.ResumeRunRequest, context: Context
    ) -> workflow_pb2.Run:
        run = await self.engine.resume(
            current_principal().tenant_id,
            request.run_id,
            request.interrupt_id,
            {**resume_answer(request), "by": current_principal().subject},
        )
        return run_message(run)

    async def GetWorkflowSettings(
        self, request: workflow_pb2.GetWorkflowSettingsRequest, context: Context
    ) -> workflow_pb2.WorkflowSettings:
        return _settings_message(await self.policies.get(current_principal().tenant_id))

    async def UpdateWorkflowSettings(
        self, request: workflow_pb2.UpdateWorkflowSettingsRequest, context: Context
    ) -> workflow_pb2.WorkflowSettings:
        tenant = current_principal().tenant_id
        paths = masked_paths(request.update_mask.paths, _SETTINGS_FIELDS)
        merged = _settings_message(await self.policies.get(tenant))
        for path in paths:
            setattr(merged, path, getattr(request.settings, path))
        policy = checked_policy(
            {name: float(getattr(merged, name)) for name in _THRESHOLDS},
            failed_draft_action=_action_of(merged),
            field_prefix="settings.",
        )
        return _settings_message(await self.policies.put(tenant, policy))
