"""``health``: the standard health service, for the server and each of its services."""

from __future__ import annotations

from typing import Final

import grpc
import typer
from crm.ai.v1 import insight_pb2, scoring_pb2, usage_pb2, workflow_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.table import Table
from rich.text import Text

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    JsonOption,
    Target,
    TimeoutOption,
    TlsOption,
    TokenOption,
    echo_json,
    open_channel,
    stdout_console,
)
from ai_orchestration.cli._exit import EXIT_FAILURE

__all__ = ["SERVICES", "health"]

SERVICES: Final[tuple[str, ...]] = tuple(
    service.full_name
    for module in (scoring_pb2, workflow_pb2, insight_pb2, usage_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
)
"""The crm.ai.v1 services of the client package, checked after the server as a whole ("")."""

_SERVING: Final = "SERVING"


def _status(stub: health_pb2_grpc.HealthStub, name: str, target: Target) -> str:
    request = health_pb2.HealthCheckRequest(service=name)
    try:
        reply = stub.Check(request, timeout=target.timeout, metadata=target.metadata)
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return "NOT_FOUND"  # the server does not serve it (an older version)
        raise
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def health(
    *,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Check the server ("") and each crm.ai.v1 service; exit 1 unless all are SERVING."""
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    with open_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        statuses = {name: _status(stub, name, target) for name in ("", *SERVICES)}
    if as_json:
        echo_json({"address": address, "statuses": statuses})
    else:
        table = Table(title=f"health of {address}")
        table.add_column("service")
        table.add_column("status")
        for name, status in statuses.items():
            style = "green" if status == _SERVING else "red"
            table.add_row(name or "(server)", Text(status, style=style))
        stdout_console().print(table)
    if any(status != _SERVING for status in statuses.values()):
        raise typer.Exit(EXIT_FAILURE)
