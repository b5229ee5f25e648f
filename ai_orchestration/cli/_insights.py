"""``ask CUSTOMER QUESTION`` and ``alerts watch``: InsightService streams."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Final, TypeVar

import typer
from crm.ai.v1 import insight_pb2, insight_pb2_grpc

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    Target,
    TlsOption,
    TokenOption,
    message_dict,
    when,
)
from ai_orchestration.cli._client import open_channel as _open

__all__ = ["alerts", "ask"]

_T = TypeVar("_T")

_KINDS: Final = {
    name.removeprefix("KIND_").lower(): value
    for name, value in insight_pb2.Alert.Kind.items()
    if value != insight_pb2.Alert.KIND_UNSPECIFIED
}
_SEVERITIES: Final = {
    name.removeprefix("SEVERITY_").lower(): value
    for name, value in insight_pb2.Severity.items()
    if value != insight_pb2.SEVERITY_UNSPECIFIED
}


def ask(
    *,
    customer: Annotated[str, typer.Argument(help="the customer's id.", show_default=False)],
    question: Annotated[str, typer.Argument(help="the question.", show_default=False)],
    max_sources: Annotated[
        int, typer.Option(min=0, max=20, help="interactions to retrieve (0: the server's 5).")
    ] = 0,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
) -> None:
    """Ask about a customer: the answer as it streams, then the interactions it cites."""
    target = Target(address=address, token=token, tls=tls)
    request = insight_pb2.AskCustomerRequest(
        customer_id=customer, question=question, max_sources=max_sources
    )
    with _open(target) as channel:
        stub = insight_pb2_grpc.InsightServiceStub(channel)
        for chunk in stub.AskCustomer(request, metadata=target.metadata):
            if chunk.HasField("text_delta"):
                typer.echo(chunk.text_delta, nl=False)
            elif chunk.HasField("citations"):
                typer.echo("\n\nsources:")
                for number, cited in enumerate(chunk.citations.citations, start=1):
                    quote = " ".join(cited.quote.split())
                    typer.echo(
                        f"[{number}] {cited.interaction_id} "
                        f"(relevance {cited.relevance:.2f}): {quote}"
                    )
            elif chunk.HasField("usage") and chunk.usage.degraded:
                typer.echo("(no LLM answered: this is the service's fallback text)", err=True)


alerts = typer.Typer(name="alerts", help="Real-time alerts of the token's tenant.")


def _alert_line(alert: insight_pb2.Alert) -> str:
    kind = insight_pb2.Alert.Kind.Name(alert.kind).removeprefix("KIND_").lower()
    severity = insight_pb2.Severity.Name(alert.severity).removeprefix("SEVERITY_").lower()
    cited = ",".join(c.interaction_id for c in alert.evidence)
    line = f"#{alert.sequence} {when(alert.create_time)} {severity} {kind}"
    line += f" {alert.customer_id or '-'}: {alert.message}"
    if cited:
        line += f" [{cited}]"
    return line + (f" run {alert.run_id}" if alert.run_id else "")


def _choice(values: Mapping[str, _T], text: str, what: str) -> _T:
    key = text.strip().lower()
    if key not in values:
        raise typer.BadParameter(f"unknown {what} {text!r}; one of {', '.join(values)}")
    return values[key]


@alerts.command("watch")
def watch(
    *,
    customer: Annotated[
        list[str] | None, typer.Option(help="only this customer's alerts (repeatable).")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help=f"only this kind (repeatable): {', '.join(_KINDS)}.")
    ] = None,
    min_severity: Annotated[
        str, typer.Option(help=f"lowest severity shown: {', '.join(_SEVERITIES)}.")
    ] = "",
    after_sequence: Annotated[
        int, typer.Option(min=0, help="replay stored alerts after this sequence first.")
    ] = 0,
    from_start: Annotated[bool, typer.Option(help="replay the whole alert log first.")] = False,
    limit: Annotated[
        int, typer.Option(min=0, help="stop after this many alerts (0: watch until Ctrl-C).")
    ] = 0,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per alert.")] = False,
) -> None:
    """Print alerts as they are raised, one line each, starting with the sequence to resume
    after (--after-sequence)."""
    request = insight_pb2.WatchAlertsRequest(
        customer_ids=customer or [],
        kinds=[_choice(_KINDS, item, "kind") for item in kind or ()],
        min_severity=_choice(_SEVERITIES, min_severity, "severity")
        if min_severity
        else insight_pb2.SEVERITY_UNSPECIFIED,
        after_sequence=after_sequence,
        from_start=from_start,
    )
    target = Target(address=address, token=token, tls=tls)
    seen = 0
    with _open(target) as channel:
        stub = insight_pb2_grpc.InsightServiceStub(channel)
        stream = stub.WatchAlerts(request, metadata=target.metadata)
        for alert in stream:
            if as_json:
                typer.echo(json.dumps(message_dict(alert), ensure_ascii=False))
            else:
                typer.echo(_alert_line(alert))
            seen += 1
            if limit and seen >= limit:
                stream.cancel()
                break
