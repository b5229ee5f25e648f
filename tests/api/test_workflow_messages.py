"""Stored event documents become the same ``RunEvent`` messages ``json_format`` would build."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from crm.ai.v1 import workflow_pb2
from google.protobuf import json_format

from ai_orchestration.wire.workflows import document, event_message
from ai_orchestration.workflows import EventKind, RunEvent

WHEN = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
DRAFT = workflow_pb2.ContentGenerationOutput(
    draft=workflow_pb2.OutreachDraft(
        subject="Webinar", body="Dear Ada, ...", channel=workflow_pb2.CHANNEL_EMAIL
    ),
    approved=True,
    degraded_steps=["review"],
)


def _event(kind: EventKind, payload: dict[str, Any]) -> RunEvent:
    return RunEvent("run-1", 7, kind, payload, WHEN)


def _expected(kind: str, body: dict[str, Any]) -> workflow_pb2.RunEvent:
    """What the conversion built with ``json_format.ParseDict`` alone."""
    message = workflow_pb2.RunEvent(run_id="run-1", sequence=7)
    message.event_time.FromDatetime(WHEN)
    json_format.ParseDict(body, getattr(message, kind), ignore_unknown_fields=True)
    return message


@pytest.mark.parametrize(
    ("kind", "payload", "body"),
    [
        (
            EventKind.STATE_CHANGED,
            {"from": "QUEUED", "to": "RUNNING", "reason": "claimed by w-1"},
            {"from": "STATE_QUEUED", "to": "STATE_RUNNING", "reason": "claimed by w-1"},
        ),
        (
            EventKind.STEP_FINISHED,
            {"step": "content", "agent": "content_agent", "degraded": True, "duration_ms": 1500.25},
            {"step": "content", "agent": "content_agent", "degraded": True, "duration": "1.50025s"},
        ),
        (
            EventKind.USAGE,  # the payload's extra keys are not fields of Usage
            {
                "step": "content",
                "model": "fast",
                "prompt_tokens": 12,
                "completion_tokens": 30,
                "cost_usd": 0.00042,
            },
            {
                "model": "fast",
                "prompt_tokens": 12,
                "completion_tokens": 30,
                "total_tokens": 42,
                "cost_usd": 0.00042,
            },
        ),
        (
            EventKind.TOOL_CALL,
            {
                "step": "analysis",
                "call_id": "c-1",
                "tool": "score_history",
                "arguments_json": '{"lead_id": "lead-42"}',
            },
            {
                "step": "analysis",
                "call_id": "c-1",
                "tool": "score_history",
                "arguments_json": '{"lead_id": "lead-42"}',
            },
        ),
        (
            EventKind.COMPLETED,  # nested messages and an enum by name
            {"content_generation": document(DRAFT)},
            {"content_generation": document(DRAFT)},
        ),
        (
            EventKind.INTERRUPT_RAISED,  # a timestamp in proto3 JSON: the constructor refuses it
            {
                "interrupt_id": "i-1",
                "reasons": ["REASON_LOW_CONFIDENCE"],
                "create_time": "2026-12-02T09:30:00Z",
                "added_by_a_later_build": 1,
            },
            {
                "interrupt_id": "i-1",
                "reasons": ["REASON_LOW_CONFIDENCE"],
                "create_time": "2026-12-02T09:30:00Z",
            },
        ),
        (EventKind.TOKEN_DELTA, {}, {}),
    ],
)
def test_an_event_is_the_message_json_format_builds(
    kind: EventKind, payload: dict[str, Any], body: dict[str, Any]
) -> None:
    message = event_message(_event(kind, payload))
    expected = _expected(kind.value, body)
    if not body:
        getattr(expected, kind.value).SetInParent()
    assert message == expected
    assert message.WhichOneof("event") == kind.value


def test_an_unknown_nested_field_is_ignored_as_json_format_does() -> None:
    output = document(DRAFT)
    output["draft"]["added_by_a_later_build"] = "x"
    message = event_message(_event(EventKind.COMPLETED, {"content_generation": output}))
    assert message.completed.content_generation == DRAFT
