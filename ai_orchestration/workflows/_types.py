"""Value types and seams shared by the workflow engine (no grpc, no langgraph imports here).

Inputs, outputs, interrupts and event payloads are JSON documents in the proto3 JSON form of
the ``crm.ai.v1`` messages with the proto field names (``preserving_proto_field_name``) and enum
values as their names, e.g. ``{"lead_qualification": {"qualification": "QUALIFICATION_QUALIFIED",
...}}``. The gRPC adapter converts them with ``google.protobuf.json_format``; the core never
builds a message.

::

    StartRun ─► RunRepository.create (QUEUED) ─► worker claims (lease) ─► RUNNING
        ─► graph steps (events appended to the log before anyone sees them)
        ─► SUCCEEDED | FAILED | CANCELLED | WAITING_FOR_INPUT (interrupt) ─► ResumeRun ─► QUEUED
    a replica dies ─► its lease expires ─► another replica claims the run, resumes from the
    last checkpoint; after ``max_attempts`` claims the run is DEAD_LETTERED.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from ai_orchestration.records import (
    TERMINAL_STATES,
    DeliveryRequest,
    EventKind,
    JsonDoc,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    RunUsage,
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


class EventSink(Protocol):
    """Where a running workflow reports progress; every event is persisted before it is seen."""

    async def emit(self, kind: EventKind, payload: JsonDoc) -> int:
        """Append the event to the run's log; returns its sequence."""


class DeliverySink(Protocol):
    """Hands approved messages to the CRM's sending side, exactly once per idempotency key."""

    async def deliver(self, request: DeliveryRequest) -> bool:
        """Deliver unless the key was delivered before; True when this call delivered it."""


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """A workflow the server runs (``crm.ai.v1.Workflow``)."""

    name: str
    """e.g. ``lead_qualification``; also the ``StartRunRequest.input`` field and the
    ``RunOutput.output`` field of the workflow."""
    description: str
    version: str
    input_type: str
    """Full proto name, e.g. ``crm.ai.v1.LeadQualificationInput``."""
    output_type: str
    interruptible: bool


@dataclass(frozen=True, slots=True)
class Completed:
    """The run finished: its ``RunOutput`` document."""

    output: JsonDoc


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The run paused for a human: the ``Interrupt`` document (with a fresh ``interrupt_id``)."""

    interrupt: JsonDoc


Outcome = Completed | Interrupted
"""What one execution of a run ends with (failures are exceptions)."""


class WorkflowRunner(Protocol):
    """Executes runs of the workflows it defines (the LangGraph side of the engine)."""

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        """Workflow name -> definition."""

    async def accept_answer(self, run: RunRecord, answer: JsonDoc) -> JsonDoc:
        """Check a human's answer to the interrupt ``run`` waits on, before the run resumes;
        returns the answer to store (the runner may add to it, e.g. a recorded override).

        Raises an ``OrchestrationError`` (INVALID_ARGUMENT, FAILED_PRECONDITION) saying what to
        change in the answer.
        """

    async def forget(self, run_ids: Collection[str]) -> None:
        """Delete whatever the runner keeps of the ended runs ``run_ids`` (their checkpoints).
        Called before their rows are deleted; a run id it does not know is no error."""

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        """Run ``run`` from its last checkpoint to its end or its next interrupt.

        A first execution starts from ``run.input``; a later one (after a crash, or after
        ResumeRun set ``run.resume``) continues from the last checkpoint of ``run.run_id``,
        answering the pending interrupt with ``run.resume`` when set. Emits step, token, tool
        and usage events through ``events`` (the engine emits state changes, completion and
        failure). Cancellation (``asyncio.CancelledError``) may arrive at any await: the last
        checkpoint stays valid. Raises an ``OrchestrationError`` for a failure the caller should
        see as such, anything else is INTERNAL.
        """
