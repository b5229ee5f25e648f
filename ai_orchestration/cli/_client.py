"""What every client command shares: where the server is, the channel, output and errors.

Client commands use the published client package (``crm.ai.v1`` stubs, ``crm_ai_client``) and
nothing of the server, so they start fast and work against any replica or an Envoy front.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Final

import grpc
import typer
from crm_ai_client import ServiceError, channel
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from ai_orchestration.cli._exit import EXIT_FAILURE

__all__ = [
    "DEFAULT_ADDRESS",
    "AddressOption",
    "JsonOption",
    "Target",
    "TimeoutOption",
    "TlsOption",
    "TokenOption",
    "describe_error",
    "echo_json",
    "message_dict",
    "open_channel",
    "stderr_console",
    "stdout_console",
    "when",
]

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"

AddressOption = Annotated[
    str,
    typer.Option(
        "--address", envvar="AIO_ADDRESS", help="server host:port.", rich_help_panel="Connection"
    ),
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="AIO_TOKEN",
        help="bearer token (JWT) sent with every call; the tenant comes from it.",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
TlsOption = Annotated[
    bool,
    typer.Option(
        "--tls",
        envvar="AIO_TLS",
        help="connect with TLS (system roots).",
        rich_help_panel="Connection",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="deadline of each unary call, seconds.",
        rich_help_panel="Connection",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="print JSON (proto3 JSON mapping) instead of a table.")
]


@dataclass(frozen=True)
class Target:
    """The server a command talks to and how."""

    address: str
    """``host:port`` of the server or of the proxy in front of it."""
    token: str = ""
    """Bearer token; empty sends none (a dev-mode server takes calls without one)."""
    tls: bool = False
    """TLS with the system's root certificates; plaintext otherwise."""
    timeout: float = 30.0
    """Deadline of each unary call, seconds; streams have none."""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the token.

        Sent per call rather than as channel credentials: gRPC refuses call credentials on a
        plaintext channel to anything but loopback, and an operator's plaintext hop (a sidecar,
        a port-forward to a cluster address) is a legitimate place to send one.
        """
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


_RECONNECT: Final = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
"""An operator waiting on ``runs tail`` or ``alerts watch`` sees a restarted server within
seconds, not after gRPC's default backoff of up to two minutes."""


@contextmanager
def open_channel(target: Target) -> Iterator[grpc.Channel]:
    """A blocking channel to ``target`` (the client package's retry policy on UNAVAILABLE).

    A call failing inside the block is reported as :func:`describe_error` lines on standard
    error and ends the command with exit code 1.
    """
    try:
        with channel(target.address, tls=target.tls, options=_RECONNECT) as opened:
            yield opened
    except grpc.RpcError as error:
        for line in describe_error(error, target):
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_FAILURE) from None


def describe_error(error: grpc.RpcError, target: Target) -> list[str]:
    """A failed call as lines for the terminal: ``CODE: message`` with the correlation id, then
    one line per field violation and per quota violation."""
    decoded = ServiceError.from_rpc_error(error)
    head = f"error: {decoded.code.name}: {decoded.message or 'no message'}"
    if decoded.code is grpc.StatusCode.UNAVAILABLE:
        head += f" (is a server listening on {target.address}? see --address, AIO_ADDRESS)"
    if decoded.code is grpc.StatusCode.UNAUTHENTICATED and not target.token:
        head += " (no token was sent: see --token, AIO_TOKEN)"
    if decoded.correlation_id:
        head += f" [correlation id {decoded.correlation_id}]"
    lines = [head]
    lines.extend(
        f"  {item.field or 'request'}: {item.description}" for item in decoded.field_violations
    )
    lines.extend(f"  quota: {item}" for item in decoded.quota_violations)
    return [" ".join(line.splitlines()) for line in lines]


def stdout_console() -> Console:
    """Rich console on standard output, resolved at each call (tests swap ``sys.stdout``).

    Markup is off: cells hold server text (messages, rationales) that may contain brackets.
    """
    return Console(highlight=False, markup=False)


def stderr_console() -> Console:
    """Rich console on standard error: progress and diagnostics, apart from the data."""
    return Console(stderr=True, highlight=False, markup=False)


def message_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping of ``message`` with the proto's field names."""
    return MessageToDict(message, preserving_proto_field_name=True)


def echo_json(value: object, *, indent: int | None = 2) -> None:
    """Print ``value`` as JSON on standard output (``indent=None``: one line, for streams)."""
    typer.echo(json.dumps(value, indent=indent, sort_keys=False, ensure_ascii=False))


def when(stamp: Timestamp) -> str:
    """A timestamp for a table (UTC, seconds), or ``-`` when unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ")
