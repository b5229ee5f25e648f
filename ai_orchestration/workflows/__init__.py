"""Durable multi-agent workflows (issue #5): run storage, queue, LangGraph graphs, engine."""

from ai_orchestration.workflows._types import (
    TERMINAL_STATES,
    Completed,
    DeliveryRequest,
    DeliverySink,
    EventKind,
    EventSink,
    Interrupted,
    JsonDoc,
    Outcome,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    RunUsage,
    WorkflowDefinition,
    WorkflowRunner,
)

__all__ = [
    "TERMINAL_STATES",
    "Completed",
    "DeliveryRequest",
    "DeliverySink",
    "EventKind",
    "EventSink",
    "Interrupted",
    "JsonDoc",
    "Outcome",
    "RunError",
    "RunEvent",
    "RunRecord",
    "RunState",
    "RunUsage",
    "WorkflowDefinition",
    "WorkflowRunner",
]
