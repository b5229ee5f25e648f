"""Run events as terminal lines: one line per event, LLM token deltas streamed inline."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

import typer
from crm.ai.v1 import workflow_pb2

from ai_orchestration.cli._client import message_dict, when

__all__ = ["EventPrinter", "state_name"]


def state_name(state: workflow_pb2.Run.State.ValueType) -> str:
    """``STATE_WAITING_FOR_INPUT`` → ``waiting_for_input``."""
    return workflow_pb2.Run.State.Name(state).removeprefix("STATE_").lower()


def _state_changed(event: workflow_pb2.RunEvent) -> str:
    change = event.state_changed
    text = f"{state_name(getattr(change, 'from'))} -> {state_name(change.to)}"
    return f"{text} ({change.reason})" if change.reason else text


def _step_finished(event: workflow_pb2.RunEvent) -> str:
    done = event.step_finished
    seconds = done.duration.ToTimedelta().total_seconds()
    return f"{done.step} finished ({seconds:.2f}s{', degraded' if done.degraded else ''})"


def _interrupt(event: workflow_pb2.RunEvent) -> str:
    raised = event.interrupt_raised
    reasons = ", ".join(
        workflow_pb2.Interrupt.Reason.Name(r).removeprefix("REASON_").lower()
        for r in raised.reasons
    )
    return f"waiting for a human: interrupt {raised.interrupt_id} ({reasons})"


def _usage(event: workflow_pb2.RunEvent) -> str:
    return f"{event.usage.model}: {event.usage.total_tokens} tokens, ${event.usage.cost_usd:.6f}"


_DESCRIBE: Final[dict[str, Callable[[workflow_pb2.RunEvent], str]]] = {
    "state_changed": _state_changed,
    "step_started": lambda event: f"{event.step_started.step} started",
    "step_finished": _step_finished,
    "tool_call": lambda event: f"{event.tool_call.tool}({event.tool_call.arguments_json})",
    "tool_result": lambda event: (
        ("error " if event.tool_result.error else "") + event.tool_result.result_json
    ),
    "interrupt_raised": _interrupt,
    "usage": _usage,
    "completed": lambda event: json.dumps(message_dict(event.completed), ensure_ascii=False),
    "failed": lambda event: str(event.failed.message),
}
"""How each kind of event reads on its line (token deltas are streamed inline instead)."""


def _describe(event: workflow_pb2.RunEvent) -> str:
    kind = event.WhichOneof("event") or "unknown"
    describe = _DESCRIBE.get(kind)
    return describe(event) if describe else kind


class EventPrinter:
    """Prints run events as they arrive and remembers the last sequence, to resume from."""

    def __init__(self, *, as_json: bool) -> None:
        self._as_json = as_json
        self._streaming = ""
        """The step whose token deltas are being written on the current line."""
        self.last_sequence = 0
        """Sequence of the last event printed."""

    def show(self, event: workflow_pb2.RunEvent) -> None:
        """Print one event (events at or below :attr:`last_sequence` are skipped)."""
        if event.sequence <= self.last_sequence:
            return
        self.last_sequence = event.sequence
        if self._as_json:
            typer.echo(json.dumps(message_dict(event), ensure_ascii=False))
            return
        if event.HasField("token_delta"):
            delta = event.token_delta
            if self._streaming != delta.step:
                self._end_line()
                typer.echo(f"#{event.sequence} {when(event.event_time)} {delta.step}: ", nl=False)
                self._streaming = delta.step
            typer.echo(delta.text, nl=False)
            return
        self._end_line()
        kind = event.WhichOneof("event") or "unknown"
        typer.echo(f"#{event.sequence} {when(event.event_time)} {kind}: {_describe(event)}")

    def note(self, text: str) -> None:
        """A remark of the client's own, on standard error."""
        self._end_line()
        typer.echo(text, err=True)

    def close(self) -> None:
        """End a line of token deltas left open."""
        self._end_line()

    def _end_line(self) -> None:
        if self._streaming:
            typer.echo("")
            self._streaming = ""
