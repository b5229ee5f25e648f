"""Server processes as users run them (the console script), sharing PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import SECRET

__all__ = ["Replica", "replicas_running", "start_replica", "start_server_process"]

CLI = [sys.executable, "-m", "ai_orchestration.cli", "serve", "--port", "0"]
Replica = tuple[subprocess.Popen[str], str]
"""A server process and the address it listens on."""


def start_replica(env: dict[str, str]) -> Replica:
    """Start one server process with ``env``; returns once it listens."""
    proc, address, _ = start_server_process(env)
    return proc, address


def start_server_process(env: dict[str, str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Start one server process with ``env``; returns once it listens, with its address and
    what it wrote until then (stdout and stderr, merged)."""
    proc = subprocess.Popen(
        CLI, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(r"listening on (\S+)", line):
            return proc, match.group(1), lines
    proc.kill()
    raise AssertionError("server did not start:\n" + "".join(lines[-30:]))


@contextlib.contextmanager
def replicas_running(
    tmp_path: Path, *, database_url: str, redis_url: str, **settings: str
) -> Iterator[list[Replica]]:
    """Two replicas (HS256 with the tests' secret), one after the other so that the first one
    migrates; ``settings`` are more ``AIO_*`` variables. Stopped (SIGTERM, then SIGKILL) after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIO_")}
    env.update(
        AIO_DATABASE_URL=database_url,
        AIO_REDIS_URL=redis_url,
        AIO_AUTH_HS256_SECRET=SECRET,
        AIO_SCORING_BOOTSTRAP_ROWS="5000",
        AIO_SHUTDOWN_GRACE_SECONDS="2",
        AIO_LOG_LEVEL="WARNING",
        **settings,
    )
    started: list[Replica] = []
    try:
        for name in ("a", "b"):
            started.append(start_replica({**env, "AIO_DATA_DIR": str(tmp_path / name)}))
        yield started
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            assert proc.stdout is not None
            proc.stdout.close()
