"""``runs list|get|tail|cancel|resume``: WorkflowService runs."""

from __future__ import annotations

from typing import Annotated, Final

import typer
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc
from google.protobuf.json_format import Parse, ParseError
from rich.table import Table

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    JsonOption,
    Target,
    TimeoutOption,
    TlsOption,
    TokenOption,
    echo_json,
    message_dict,
    open_channel,
    stdout_console,
    when,
)
from ai_orchestration.cli._events import state_name
from ai_orchestration.cli._exit import EXIT_FAILURE, EXIT_USAGE
from ai_orchestration.cli._tail import RunId, tail_run

__all__ = ["runs"]

State = workflow_pb2.Run.State
_STATES: Final = {
    state_name(value): value for value in State.values() if value != State.STATE_UNSPECIFIED
}

runs = typer.Typer(
    name="runs",
    help="List, inspect, follow, cancel and resume workflow runs.",
    no_args_is_help=True,
)


def _state(text: str) -> State.ValueType:
    key = text.strip().lower().removeprefix("state_")
    if key not in _STATES:
        raise typer.BadParameter(f"unknown state {text!r}; one of {', '.join(_STATES)}")
    return _STATES[key]


@runs.command("list")
def list_runs(
    *,
    state: Annotated[
        list[str] | None,
        typer.Option(help=f"only runs in this state (repeatable): {', '.join(_STATES)}."),
    ] = None,
    workflow: Annotated[str, typer.Option(help="only runs of this workflow.")] = "",
    page_size: Annotated[
        int, typer.Option(min=1, max=1000, help="runs per page (the server's default: 50).")
    ] = 50,
    page_token: Annotated[str, typer.Option(help="next_page_token of a previous page.")] = "",
    every_page: Annotated[
        bool, typer.Option("--all", help="follow next_page_token through every page.")
    ] = False,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first; prints the next page's token when there is one."""
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    request = workflow_pb2.ListRunsRequest(
        workflow=workflow,
        states=[_state(item) for item in state or ()],
        page_size=page_size,
        page_token=page_token,
    )
    found: list[workflow_pb2.Run] = []
    with open_channel(target) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        while True:
            page = stub.ListRuns(request, timeout=target.timeout, metadata=target.metadata)
            found.extend(page.runs)
            request.page_token = page.next_page_token
            if not (every_page and page.next_page_token):
                break
    if as_json:
        listed = [message_dict(run) for run in found]
        echo_json({"runs": listed, "next_page_token": request.page_token})
        return
    table = Table()
    for column in ("run_id", "workflow", "state", "created", "ended", "attempts", "events"):
        table.add_column(column, no_wrap=column == "run_id")
    for run in found:
        table.add_row(
            run.run_id,
            run.workflow,
            state_name(run.state),
            when(run.create_time),
            when(run.end_time),
            str(run.attempts),
            str(run.last_sequence),
        )
    console = stdout_console()
    console.print(table)
    if request.page_token:
        console.print(f"next page: --page-token {request.page_token}")


def _show_run(run: workflow_pb2.Run, as_json: bool) -> None:
    if as_json:
        echo_json(message_dict(run))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "run_id": run.run_id,
        "workflow": f"{run.workflow} {run.workflow_version}",
        "state": state_name(run.state),
        "created": when(run.create_time),
        "started": when(run.start_time),
        "ended": when(run.end_time),
        "attempts": str(run.attempts),
        "last sequence": str(run.last_sequence),
    }
    if run.HasField("pending_interrupt"):
        interrupt = run.pending_interrupt
        reasons = ", ".join(
            workflow_pb2.Interrupt.Reason.Name(r).removeprefix("REASON_").lower()
            for r in interrupt.reasons
        )
        rows["interrupt"] = f"{interrupt.interrupt_id} ({reasons})"
        rows["proposal"] = interrupt.proposal.rationale
    if run.cancel_reason:
        rows["cancel reason"] = run.cancel_reason
    if run.HasField("error"):
        rows["error"] = run.error.message
    if run.HasField("usage"):
        rows["usage"] = f"{run.usage.total_tokens} tokens, ${run.usage.cost_usd:.6f}"
    for key, value in rows.items():
        table.add_row(key, value)
    console = stdout_console()
    console.print(table)
    if run.HasField("output"):
        console.print_json(data=message_dict(run.output))


@runs.command("get")
def get_run(
    *,
    run_id: RunId,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Show one run: state, times, pending interrupt, output or error, usage."""
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    with open_channel(target) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        run = stub.GetRun(
            workflow_pb2.GetRunRequest(run_id=run_id),
            timeout=target.timeout,
            metadata=target.metadata,
        )
    _show_run(run, as_json)


runs.command("tail")(tail_run)


@runs.command("cancel")
def cancel_run(
    *,
    run_id: RunId,
    reason: Annotated[str, typer.Option(help="why, for the audit trail.")] = "",
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Cancel a run (an ended run is FAILED_PRECONDITION, exit 1)."""
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    with open_channel(target) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        run = stub.CancelRun(
            workflow_pb2.CancelRunRequest(run_id=run_id, reason=reason),
            timeout=target.timeout,
            metadata=target.metadata,
        )
    _show_run(run, as_json)


def _edit(text: str) -> workflow_pb2.Edit:
    try:
        return Parse(text, workflow_pb2.Edit())
    except ParseError as error:
        typer.echo(f"error: --edit is not a crm.ai.v1.Edit in JSON: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@runs.command("resume")
def resume_run(
    *,
    run_id: RunId,
    approve: Annotated[bool, typer.Option("--approve", help="approve the proposal.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="reject the proposal.")] = False,
    edit: Annotated[
        str,
        typer.Option(
            "--edit",
            help='approve with changes: a crm.ai.v1.Edit as JSON, e.g. \'{"draft": {"subject": '
            '"Hi", "body": "..."}}\'.',
            show_default=False,
        ),
    ] = "",
    comment: Annotated[str, typer.Option(help="comment of an approval or an edit.")] = "",
    reason: Annotated[str, typer.Option(help="reason of a rejection.")] = "",
    override_failed_checks: Annotated[
        bool, typer.Option(help="with --approve: deliver a draft that fails its checks.")
    ] = False,
    interrupt_id: Annotated[
        str, typer.Option(help="the interrupt answered; default: the run's pending one.")
    ] = "",
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Answer a run's pending interrupt: exactly one of --approve, --edit JSON, --reject."""
    if approve + reject + bool(edit) != 1:
        raise typer.BadParameter("give exactly one of --approve, --edit, --reject")
    request = workflow_pb2.ResumeRunRequest(run_id=run_id, interrupt_id=interrupt_id)
    if approve:
        request.approve.CopyFrom(
            workflow_pb2.Approval(comment=comment, override_failed_checks=override_failed_checks)
        )
    elif reject:
        request.reject.CopyFrom(workflow_pb2.Rejection(reason=reason))
    else:
        answer = _edit(edit)
        if comment:
            answer.comment = comment
        request.edit.CopyFrom(answer)
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    with open_channel(target) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        if not request.interrupt_id:
            run = stub.GetRun(
                workflow_pb2.GetRunRequest(run_id=run_id),
                timeout=target.timeout,
                metadata=target.metadata,
            )
            if not run.HasField("pending_interrupt"):
                typer.echo(
                    f"error: run {run_id} is {state_name(run.state)}, not waiting for input",
                    err=True,
                )
                raise typer.Exit(EXIT_FAILURE)
            request.interrupt_id = run.pending_interrupt.interrupt_id
        resumed = stub.ResumeRun(request, timeout=target.timeout, metadata=target.metadata)
    _show_run(resumed, as_json)
