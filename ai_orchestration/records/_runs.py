"""The words of a workflow run: its record, states, events, errors, usage and deliveries.

They belong to the domain, and import nothing of the service: storage stores them, the engine
moves runs through them, the graphs report in them and the API converts them to the wire.

Inputs, outputs, interrupts and event payloads are JSON documents in the proto3 JSON form of
the ``crm.ai.v1`` messages with the proto field names (``preserving_proto_field_name``) and enum
values as their names, e.g. ``{"lead_qualification": {"qualification": "QUALIFICATION_QUALIFIED",
...}}``. The gRPC adapter converts them with ``google.protobuf.json_format``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from ai_orchestration.records._json import JsonDoc

__all__ = [
    "TERMINAL_STATES",
    "DeliveryRequest",
    "EventKind",
    "RunError",
    "RunEvent",
    "RunRecord",
    "RunState",
    "RunUsage",
]


class RunState(enum.StrEnum):
    """Lifecycle of a run (mirrors ``crm.ai.v1.Run.State``; the value is the enum's suffix)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    WAITING_FOR_INPUT = "WAITING_FOR_INPUT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DEAD_LETTERED = "DEAD_LETTERED"


TERMINAL_STATES: Final[frozenset[RunState]] = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.DEAD_LETTERED}
)
"""States a run never leaves."""


class EventKind(enum.StrEnum):
    """Kinds of run events (the field names of ``RunEvent.event``) and their payloads."""

    STATE_CHANGED = "state_changed"
    """``{"from": "QUEUED", "to": "RUNNING", "reason": "..."}`` (states as RunState values)."""
    STEP_STARTED = "step_started"
    """``{"step": "lead_analysis", "agent": "lead_analysis_agent"}``."""
    STEP_FINISHED = "step_finished"
    """``{"step": ..., "agent": ..., "degraded": false, "duration_ms": 12.5}``."""
    TOKEN_DELTA = "token_delta"
    """``{"step": ..., "text": "..."}``."""
    TOOL_CALL = "tool_call"
    """``{"step": ..., "call_id": ..., "tool": ..., "arguments_json": "{...}"}``."""
    TOOL_RESULT = "tool_result"
    """``{"step": ..., "call_id": ..., "result_json": "{...}", "error": false}``."""
    INTERRUPT_RAISED = "interrupt_raised"
    """An ``Interrupt`` document: ``{"interrupt_id", "reasons": [...], "proposal": {...}}``."""
    USAGE = "usage"
    """``{"prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.0001}``."""
    COMPLETED = "completed"
    """A ``RunOutput`` document."""
    FAILED = "failed"
    """``{"code": "FAILED_PRECONDITION", "message": "...", "reason": "..."}``."""


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One entry of a run's event log; ``sequence`` starts at 1 and increases by 1 per run."""

    run_id: str
    sequence: int
    kind: EventKind
    payload: JsonDoc
    event_time: datetime


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run failed: a gRPC status code name, a message, and a stable reason."""

    code: str
    """e.g. ``DEADLINE_EXCEEDED``, ``INTERNAL``, ``FAILED_PRECONDITION``."""
    message: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunUsage:
    """LLM usage of a run so far."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored."""

    run_id: str
    tenant_id: str
    workflow: str
    workflow_version: str
    state: RunState
    priority: int
    request_id: str
    labels: Mapping[str, str]
    input: JsonDoc
    """The workflow's input document (e.g. a ``LeadQualificationInput``)."""
    timeout_seconds: float
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    last_sequence: int = 0
    attempts: int = 0
    output: JsonDoc | None = None
    """A ``RunOutput`` document, once SUCCEEDED."""
    error: RunError | None = None
    pending_interrupt: JsonDoc | None = None
    """An ``Interrupt`` document, while WAITING_FOR_INPUT."""
    resume: JsonDoc | None = None
    """The answer to the pending interrupt, set by ResumeRun until a worker consumes it:
    ``{"interrupt_id": ..., "decision": "approve"|"edit"|"reject", ...}``."""
    usage: RunUsage = field(default_factory=RunUsage)
    cancel_requested: bool = False
    cancel_reason: str = ""
    """Why CancelRun cancelled the run (its reason, or "cancelled by caller"); "" while
    CancelRun was never called."""
    lease_owner: str = ""
    lease_expires_at: datetime | None = None
    trace_parent: str = ""
    """The W3C ``traceparent`` of the call that started the run: each execution's span is its
    child, on whichever replica ("" when that call was not traced)."""


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """A message a workflow hands to the delivery sink once approved."""

    idempotency_key: str
    """Stable across retries and replicas (e.g. ``<run_id>:deliver``): the ledger refuses a
    second delivery with the same key."""
    tenant_id: str
    run_id: str
    channel: str
    """``CHANNEL_EMAIL`` ... (the ``Channel`` enum name)."""
    recipient: JsonDoc
    draft: JsonDoc
    """An ``OutreachDraft`` document."""
