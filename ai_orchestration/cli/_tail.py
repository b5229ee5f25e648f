"""``runs tail``: a run's events as they happen, resumed across server restarts."""

from __future__ import annotations

import time
from typing import Annotated, Final

import grpc
import typer
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    Target,
    TlsOption,
    TokenOption,
    open_channel,
)
from ai_orchestration.cli._events import EventPrinter
from ai_orchestration.cli._exit import EXIT_FAILURE

__all__ = ["RunId", "tail_run"]

State = workflow_pb2.Run.State
_ENDED: Final = {
    State.STATE_SUCCEEDED,
    State.STATE_FAILED,
    State.STATE_CANCELLED,
    State.STATE_DEAD_LETTERED,
}

RunId = Annotated[str, typer.Argument(help="the run's id (a UUID).", show_default=False)]


def _follow(
    stub: workflow_pb2_grpc.WorkflowServiceStub,
    request: workflow_pb2.WatchRunRequest,
    printer: EventPrinter,
    *,
    target: Target,
    until_waiting: bool,
    reconnect_seconds: float,
) -> State.ValueType:
    """Print the run's events until its stream ends; the last state seen.

    When the server goes away (UNAVAILABLE, or behind a proxy such as Envoy a stream reset:
    INTERNAL with no status from our server), the watch is called again after the last sequence
    printed, on whichever replica answers, for up to ``reconnect_seconds``.
    """
    last_state: State.ValueType = State.STATE_UNSPECIFIED
    failing_since: float | None = None
    while True:
        request.after_sequence = max(request.after_sequence, printer.last_sequence)
        try:
            for event in stub.WatchRun(request, metadata=target.metadata):
                failing_since = None
                printer.show(event)
                if event.HasField("state_changed"):
                    last_state = event.state_changed.to
                    if until_waiting and last_state == State.STATE_WAITING_FOR_INPUT:
                        return last_state
            return last_state
        except grpc.RpcError as error:
            if not _connection_lost(error):
                raise
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                printer.note(f"reconnecting after sequence {printer.last_sequence}")
            if now - failing_since > reconnect_seconds:
                raise
            time.sleep(min(2.0, 0.25 + (now - failing_since) / 2))


def _connection_lost(error: grpc.RpcError) -> bool:
    """Whether ``error`` is the connection going away rather than an answer of the server.

    A replica that dies behind Envoy resets the stream, which gRPC reports as INTERNAL
    ("Stream removed"); an INTERNAL the server itself sends carries its correlation id.
    """
    code = error.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        return True
    if code is not grpc.StatusCode.INTERNAL:
        return False
    trailers = error.trailing_metadata() or ()
    return not any(item.key == "x-correlation-id" for item in trailers)


def tail_run(
    *,
    run_id: RunId,
    after_sequence: Annotated[
        int, typer.Option(min=0, help="resume: only events after this sequence.")
    ] = 0,
    until_waiting: Annotated[
        bool, typer.Option(help="stop when the run waits for a human (exit 0).")
    ] = False,
    reconnect_seconds: Annotated[
        float,
        typer.Option(min=0, help="keep reconnecting this long after the server goes away."),
    ] = 30.0,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per event.")] = False,
) -> None:
    """Follow a run's events (WatchRun) until it ends; exit 0 if it succeeded, else 1.

    Each event line starts with its sequence: pass the last one to --after-sequence to resume
    without a gap or a duplicate.
    """
    target = Target(address=address, token=token, tls=tls)
    printer = EventPrinter(as_json=as_json)
    with open_channel(target) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        last_state = _follow(
            stub,
            workflow_pb2.WatchRunRequest(run_id=run_id, after_sequence=after_sequence),
            printer,
            target=target,
            until_waiting=until_waiting,
            reconnect_seconds=reconnect_seconds,
        )
        if last_state not in _ENDED and last_state != State.STATE_WAITING_FOR_INPUT:
            # Resumed after the last state change: ask the run itself.
            last_state = stub.GetRun(
                workflow_pb2.GetRunRequest(run_id=run_id),
                timeout=target.timeout,
                metadata=target.metadata,
            ).state
    printer.close()
    succeeded = last_state == State.STATE_SUCCEEDED
    if not (succeeded or (until_waiting and last_state == State.STATE_WAITING_FOR_INPUT)):
        raise typer.Exit(EXIT_FAILURE)
