"""Rows of the run tables: validation of new runs, and conversions to the shared record types."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from ai_orchestration.errors import NotFoundError
from ai_orchestration.records import (
    EventKind,
    JsonDoc,
    JsonValue,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    RunUsage,
)
from ai_orchestration.storage._common import require_text
from ai_orchestration.storage._models import WorkflowRunEventModel, WorkflowRunModel
from ai_orchestration.storage._pages import cursor_text, cursor_time

__all__ = [
    "MAX_PRIORITY",
    "error_document",
    "event_row",
    "new_run_values",
    "not_found",
    "run_cursor",
    "to_event",
    "to_record",
    "transition_changes",
]

MAX_PRIORITY: Final[int] = 9
"""Highest queue priority (0 is the lowest), as in ``StartRunRequest.priority``."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TRANSITION_FIELDS = frozenset(
    {"output", "error", "pending_interrupt", "resume", "cancel_reason", "worker_id"}
)


def transition_changes(fields: Mapping[str, object]) -> tuple[str | None, dict[str, Any]]:
    unknown = set(fields) - _TRANSITION_FIELDS
    if unknown:
        raise ValueError(f"transition() got unknown fields {sorted(unknown)}")
    changes: dict[str, Any] = {}
    for name in ("output", "pending_interrupt", "resume"):
        if name in fields:
            value = fields[name]
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a JSON object or None")
            changes[name] = value
    if "cancel_reason" in fields:
        if not isinstance(fields["cancel_reason"], str):
            raise ValueError("cancel_reason must be a string")
        changes["cancel_reason"] = fields["cancel_reason"]
    if "error" in fields:
        error = fields["error"]
        if error is not None and not isinstance(error, RunError):
            raise ValueError("error must be a RunError or None")
        changes["error"] = None if error is None else error_document(error)
    owner = fields.get("worker_id")
    if owner is not None and not isinstance(owner, str):
        raise ValueError("worker_id must be a string")
    return owner, changes


def new_run_values(
    tenant_id: str,
    *,
    workflow: str,
    workflow_version: str,
    priority: int,
    request_id: str,
    request_digest: str,
    labels: Mapping[str, str],
    input_document: JsonDoc,
    timeout_seconds: float,
    now: datetime,
    trace_parent: str = "",
) -> dict[str, Any]:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an integer, got {priority!r}")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be within 0..{MAX_PRIORITY}, got {priority}")
    if not _SHA256_HEX.fullmatch(request_digest):
        raise ValueError("request_digest must be 64 lowercase hex characters (sha256)")
    if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ValueError("labels must map strings to strings")
    if not isinstance(input_document, dict):
        raise ValueError("input must be a JSON object (a dict)")
    return {
        "run_id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "workflow": require_text("workflow", workflow),
        "workflow_version": require_text("workflow_version", workflow_version),
        "state": RunState.QUEUED.value,
        "priority": priority,
        "request_id": require_text("request_id", request_id),
        "request_digest": request_digest,
        "labels": dict(labels),
        "input": input_document,
        "timeout_seconds": float(timeout_seconds),
        "created_at": now,
        "last_sequence": 1,
        "attempts": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "cancel_requested": False,
        "cancel_reason": "",
        "lease_owner": "",
        "trace_parent": trace_parent,
    }


def event_row(
    run_id: str,
    sequence: int,
    kind: EventKind,
    payload: Mapping[str, JsonValue],
    event_time: datetime,
) -> WorkflowRunEventModel:
    return WorkflowRunEventModel(
        run_id=run_id, sequence=sequence, kind=kind.value, payload=dict(payload),
        event_time=event_time,
    )  # fmt: skip


def error_document(error: RunError) -> dict[str, JsonValue]:
    return {"code": error.code, "message": error.message, "reason": error.reason}


def not_found(run_id: str) -> NotFoundError:
    return NotFoundError(
        f"run {run_id} not found", reason="RUN_NOT_FOUND", metadata={"run_id": run_id}
    )


def run_cursor(cursor: Sequence[JsonValue]) -> tuple[datetime, str]:
    created_at, run_id = cursor
    return cursor_time(created_at), cursor_text(run_id)


def to_record(row: WorkflowRunModel) -> RunRecord:
    error = row.error
    return RunRecord(
        run_id=row.run_id,
        tenant_id=row.tenant_id,
        workflow=row.workflow,
        workflow_version=row.workflow_version,
        state=RunState(row.state),
        priority=row.priority,
        request_id=row.request_id,
        labels={key: str(value) for key, value in row.labels.items()},
        input=dict(row.input),
        timeout_seconds=row.timeout_seconds,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        last_sequence=row.last_sequence,
        attempts=row.attempts,
        output=None if row.output is None else dict(row.output),
        error=None if error is None else RunError(**{k: str(v) for k, v in error.items()}),
        pending_interrupt=None if row.pending_interrupt is None else dict(row.pending_interrupt),
        resume=None if row.resume is None else dict(row.resume),
        usage=RunUsage(row.prompt_tokens, row.completion_tokens, row.cost_usd),
        cancel_requested=row.cancel_requested,
        cancel_reason=row.cancel_reason,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        trace_parent=row.trace_parent,
    )


class EventColumns(Protocol):
    """An event row: the ORM model or a Core row of ``workflow_run_events``."""

    @property
    def run_id(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, JsonValue]: ...
    @property
    def event_time(self) -> datetime: ...


def to_event(row: EventColumns) -> RunEvent:
    return RunEvent(
        run_id=row.run_id,
        sequence=row.sequence,
        kind=EventKind(row.kind),
        payload=dict(row.payload),
        event_time=row.event_time,
    )
