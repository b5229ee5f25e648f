"""Conversions between ``crm.ai.v1`` workflow messages and the workflow core's documents.

The core keeps inputs, outputs, interrupts and event payloads as proto3 JSON documents with the
proto field names, so the typed messages are one ``json_format`` call away in either direction.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Final

from crm.ai.v1 import common_pb2, workflow_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ai_orchestration import errors
from ai_orchestration.wire.times import timestamp
from ai_orchestration.workflows import (
    EventKind,
    JsonDoc,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    WorkflowDefinition,
)

_STATE_PREFIX: Final[str] = "STATE_"


def document(message: Message) -> JsonDoc:
    """A message as the core's JSON document (proto field names, enums by name)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _parse(doc: dict[str, Any], message: Message) -> Message:
    """Merges ``doc`` into ``message``; fields this build lacks are ignored (documents the core
    wrote from older definitions may carry them).

    ``json_format.ParseDict`` cost 10-17 us for an event's few fields. A document of plain
    values (field names, enums by name, nested dicts and lists) is what the message's own
    constructor takes, at under 1 us, and builds the same message; whatever the constructor
    refuses (a proto3 JSON spelling such as an int64 as a string, a timestamp as text, an
    unknown nested field) goes through ``ParseDict``.
    """
    fields = _field_names(message.DESCRIPTOR)
    try:
        message.MergeFrom(type(message)(**{k: v for k, v in doc.items() if k in fields}))
    except (TypeError, ValueError):  # raised before anything was merged
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    return message


@functools.cache
def _field_names(descriptor: Descriptor) -> frozenset[str]:
    return frozenset(descriptor.fields_by_name)


def run_state(state: RunState) -> workflow_pb2.Run.State.ValueType:
    """The proto enum value of a state."""
    return workflow_pb2.Run.State.Value(_STATE_PREFIX + state.value)


def state_from_proto(value: int) -> RunState:
    """The core's state of a proto enum value (UNSPECIFIED is rejected by validation)."""
    return RunState(workflow_pb2.Run.State.Name(value).removeprefix(_STATE_PREFIX))  # type: ignore[arg-type]


def _duration(seconds: float) -> Duration:
    value = Duration()
    value.FromTimedelta(timedelta(seconds=seconds))
    return value


def rpc_status(error: RunError) -> status_pb2.Status:
    """A ``google.rpc.Status`` with an ``ErrorInfo`` of the run's error."""
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason or error.code, domain=errors.ERROR_DOMAIN)
    )
    known = error.code in code_pb2.Code.keys()  # noqa: SIM118 - an enum wrapper, not a dict
    code = code_pb2.Code.Value(error.code) if known else code_pb2.INTERNAL
    return status_pb2.Status(code=code, message=error.message, details=[info])


def run_message(run: RunRecord) -> workflow_pb2.Run:
    """The ``Run`` of a stored run."""
    message = workflow_pb2.Run(
        run_id=run.run_id,
        workflow=run.workflow,
        workflow_version=run.workflow_version,
        state=run_state(run.state),
        priority=run.priority,
        request_id=run.request_id,
        labels=dict(run.labels),
        create_time=timestamp(run.created_at),
        last_sequence=run.last_sequence,
        attempts=run.attempts,
        usage=common_pb2.Usage(
            prompt_tokens=run.usage.prompt_tokens,
            completion_tokens=run.usage.completion_tokens,
            total_tokens=run.usage.prompt_tokens + run.usage.completion_tokens,
            cost_usd=run.usage.cost_usd,
        ),
        timeout=_duration(run.timeout_seconds),
        cancel_reason=run.cancel_reason,
    )
    if run.started_at is not None:
        message.start_time.CopyFrom(timestamp(run.started_at))
    if run.ended_at is not None:
        message.end_time.CopyFrom(timestamp(run.ended_at))
    if run.pending_interrupt is not None and run.state is RunState.WAITING_FOR_INPUT:
        _parse(run.pending_interrupt, message.pending_interrupt)
    if run.output is not None:
        _parse(run.output, message.output)
    if run.error is not None:
        message.error.CopyFrom(rpc_status(run.error))
    return message


def _event_body(kind: EventKind, payload: JsonDoc) -> dict[str, Any]:
    if kind is EventKind.STATE_CHANGED:
        return {
            "from": _STATE_PREFIX + str(payload.get("from", "UNSPECIFIED")),
            "to": _STATE_PREFIX + str(payload.get("to", "UNSPECIFIED")),
            "reason": str(payload.get("reason", "")),
        }
    if kind is EventKind.STEP_FINISHED:
        return {k: v for k, v in payload.items() if k != "duration_ms"}  # set by the caller
    if kind is EventKind.USAGE:
        prompt = int(payload.get("prompt_tokens", 0))
        completion = int(payload.get("completion_tokens", 0))
        return {**payload, "total_tokens": prompt + completion}
    return payload


def event_message(event: RunEvent) -> workflow_pb2.RunEvent:
    """The ``RunEvent`` of a stored event."""
    message = workflow_pb2.RunEvent(
        run_id=event.run_id, sequence=event.sequence, event_time=timestamp(event.event_time)
    )
    if event.kind is EventKind.FAILED:
        error = RunError(
            str(event.payload.get("code", "INTERNAL")),
            str(event.payload.get("message", "")),
            str(event.payload.get("reason", "")),
        )
        message.failed.CopyFrom(rpc_status(error))
        return message
    target = getattr(message, event.kind.value)
    _parse(_event_body(event.kind, event.payload), target)
    if event.kind in (EventKind.STEP_FINISHED, EventKind.TOOL_RESULT):
        milliseconds = float(event.payload.get("duration_ms", 0.0))
        target.duration.FromMicroseconds(round(milliseconds * 1000))
    if message.WhichOneof("event") is None:  # an empty payload still says what happened
        target.SetInParent()
    return message


def workflow_message(definition: WorkflowDefinition) -> workflow_pb2.Workflow:
    """The ``Workflow`` of a definition."""
    return workflow_pb2.Workflow(
        name=definition.name,
        description=definition.description,
        version=definition.version,
        input_type=definition.input_type,
        output_type=definition.output_type,
        interruptible=definition.interruptible,
    )


def resume_answer(request: workflow_pb2.ResumeRunRequest) -> JsonDoc:
    """The core's answer document of a ``ResumeRunRequest``."""
    decision = request.WhichOneof("decision")
    if decision == "approve":
        return {
            "decision": "approve",
            "comment": request.approve.comment,
            "override_failed_checks": request.approve.override_failed_checks,
        }
    if decision == "edit":
        answer: JsonDoc = {"decision": "edit", "comment": request.edit.comment}
        if request.edit.HasField("draft"):
            answer["draft"] = document(request.edit.draft)
        if request.edit.qualification:
            answer["qualification"] = workflow_pb2.Qualification.Name(request.edit.qualification)
        return answer
    return {"decision": "reject", "reason": request.reject.reason}
