"""The server as users run it: the console script in its own process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ai_orchestration.config import Settings
from ai_orchestration.errors import FailedPreconditionError
from ai_orchestration.server import build_authenticator

CLI = [sys.executable, "-m", "ai_orchestration.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIO_")}
    env.update({"AIO_DATA_DIR": str(tmp_path), "AIO_SHUTDOWN_GRACE_SECONDS": "5", **extra})
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    address = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not address:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on (\S+)", line)
        address = match.group(1) if match else ""
    assert address, "server did not start"
    try:
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


def test_dev_mode_refuses_non_loopback_address(tmp_path: Path) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        build_authenticator(Settings(host="0.0.0.0", data_dir=tmp_path))
    assert "AIO_AUTH_HS256_SECRET" in caught.value.message
    result = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", "0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before the database was created or migrated


def test_non_loopback_with_auth_is_allowed(tmp_path: Path) -> None:
    authenticator = build_authenticator(
        Settings(host="0.0.0.0", data_dir=tmp_path, auth_hs256_secret="x" * 32)
    )
    assert not authenticator.dev_mode


def test_sigterm_drains_health_then_exits(served: tuple[subprocess.Popen[str], str]) -> None:
    proc, address = served
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(
            health_pb2.HealthCheckRequest(service="crm.ai.v1.WorkflowService"), timeout=30
        )
        first = next(watch)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        # The in-flight stream sees NOT_SERVING before the server goes away.
        statuses = [first.status]
        try:
            for reply in watch:
                statuses.append(reply.status)
        except grpc.RpcError:
            pass
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    assert proc.wait(20) == 0
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert "received SIGTERM: draining" in output
    assert "Traceback" not in output


def test_migrate_command_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [*CLI, "migrate"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "ai-orchestration.db").exists()


def test_invalid_configuration_is_reported_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "serve"],
        env=_env(tmp_path, AIO_PORT="not-a-port"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_redis_queue_without_redis_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workflow_queue=redis needs redis_url"):
        Settings(data_dir=tmp_path, workflow_queue="redis")
    assert Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0").uses_stream_queue
    assert not Settings(data_dir=tmp_path).uses_stream_queue  # auto, without Redis
    pinned = Settings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", workflow_queue="database"
    )
    assert not pinned.uses_stream_queue


def test_a_busy_port_is_reported_at_once_without_traceback(tmp_path: Path) -> None:
    """A second server on a port in use says so and exits, before loading anything."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "serve", "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1  # a failed start, not a usage error (that is 2)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port or AIO_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "listening on" not in result.stdout
    assert "bootstrap" not in (result.stderr + result.stdout).lower()  # no model was trained
    assert result.stderr.count("no authentication configured: dev mode") == 1  # said once
