"""``health``, and how every command reports failures: one line, an exit code, no traceback."""

from __future__ import annotations

import json
import socket

from grpc_health.v1 import health_pb2

from ai_orchestration.cli._health import SERVICES
from ai_orchestration.server import Server
from tests.cli.conftest import Cli


async def test_health_lists_every_service_serving(cli: Cli) -> None:
    done = await cli("health")
    assert done.code == 0, done.stderr
    for name in ("(server)", *SERVICES):
        line = next(line for line in done.stdout.splitlines() if f" {name} " in line)
        assert "SERVING" in line
    assert len(SERVICES) == 4


async def test_health_json_from_a_separate_process(cli: Cli) -> None:
    done = await cli.process("health", "--json")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["statuses"] == {name: "SERVING" for name in ("", *SERVICES)}


async def test_health_exits_1_when_a_service_is_not_serving(cli: Cli, cli_server: Server) -> None:
    await cli_server.health.set(
        "crm.ai.v1.UsageService", health_pb2.HealthCheckResponse.NOT_SERVING
    )
    done = await cli("health", "--json")
    assert done.code == 1
    statuses = json.loads(done.stdout)["statuses"]
    assert statuses["crm.ai.v1.UsageService"] == "NOT_SERVING"
    assert statuses["crm.ai.v1.ScoringService"] == "SERVING"


def _report(stderr: str) -> list[str]:
    """The CLI's error report: its lines from ``error:`` on (a separate process may get a log
    line of the gRPC core library before it, which is not the CLI's output)."""
    lines = stderr.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, stderr
    return lines[starts[0] :]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_no_server_is_one_line_and_exit_1(cli: Cli) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    done = await cli.process("runs", "list", "--address", address)
    assert done.code == 1
    assert done.stdout == ""
    assert _report(done.stderr) == [done.stderr.splitlines()[-1]], done.stderr  # one line
    assert done.stderr.splitlines()[-1].startswith("error: UNAVAILABLE: ")
    assert f"is a server listening on {address}?" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_bad_token_is_unauthenticated(cli: Cli) -> None:
    done = await cli.process("runs", "list", env={"AIO_TOKEN": "not-a-jwt"})
    assert done.code == 1
    (line,) = _report(done.stderr)
    assert line.startswith("error: UNAUTHENTICATED: "), done.stderr
    assert "Traceback" not in done.stderr
    without = await cli("runs", "list", token="")
    assert without.code == 1
    assert "(no token was sent: see --token, AIO_TOKEN)" in without.stderr


async def test_invalid_arguments_list_the_field_violations(cli: Cli) -> None:
    done = await cli.process("runs", "get", "not-a-uuid")
    assert done.code == 1
    first, *violations = _report(done.stderr)
    assert first.startswith("error: INVALID_ARGUMENT: "), done.stderr
    assert violations, done.stderr
    assert all(line.startswith("  run_id: ") for line in violations)
    assert "Traceback" not in done.stderr


async def test_usage_errors_exit_2(cli: Cli) -> None:
    unknown = await cli("runs", "list", "--no-such-option")
    assert unknown.code == 2
    state = await cli("runs", "list", "--state", "sleeping")
    assert state.code == 2
    assert "unknown state 'sleeping'" in state.stderr
    both = await cli(
        "runs", "resume", "00000000-0000-4000-8000-000000000000", "--approve", "--reject"
    )
    assert both.code == 2
