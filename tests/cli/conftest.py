"""A real server for the CLI, and a way to run the CLI against it from an async test.

The server is the API tests' (HS256 auth, SQLite, its LLM gateway on the OpenAI-compatible test
server) and runs on the test's event loop; the CLI, a blocking gRPC client, runs in a worker
thread so the loop keeps serving while it waits.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai_orchestration.cli import app
from ai_orchestration.server import Server
from tests.api.conftest import write_llm_config
from tests.conftest import make_token, running_server, server_settings
from tests.fixtures.llm_server import LlmTestServer


@dataclass(frozen=True)
class Outcome:
    """What one CLI invocation did."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """Runs ``ai-orchestration`` against one server with a token of one tenant."""

    address: str
    token: str

    async def __call__(self, *args: str, token: str | None = None) -> Outcome:
        """Invoke in this process (typer's CliRunner) in a worker thread."""
        env = {"AIO_ADDRESS": self.address, "AIO_TOKEN": self.token if token is None else token}
        env["COLUMNS"] = "250"  # rich tables keep whole ids on one line

        def run() -> Outcome:
            result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
            return Outcome(result.exit_code, result.stdout, result.stderr)

        return await asyncio.to_thread(run)

    async def process(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        """Invoke ``python -m ai_orchestration.cli`` as a separate process."""
        command: Sequence[str] = [sys.executable, "-m", "ai_orchestration.cli", *args]
        base = {"AIO_ADDRESS": self.address, "AIO_TOKEN": self.token, "COLUMNS": "250"}

        def run() -> Outcome:
            done = subprocess.run(
                command,
                env={**_inherited(), **base, **(env or {})},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            return Outcome(done.returncode, done.stdout, done.stderr)

        return await asyncio.to_thread(run)


def _inherited() -> dict[str, str]:
    import os  # noqa: PLC0415

    return {k: v for k, v in os.environ.items() if not k.startswith("AIO_")}


@pytest.fixture
async def cli_server(tmp_path: Path, llm_server: LlmTestServer) -> AsyncIterator[Server]:
    """A real server whose LLM calls go to the test LLM server."""
    settings = server_settings(
        tmp_path,
        llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        llm_cache_ttl_seconds=0,
    )
    async with running_server(settings) as running:
        yield running


@pytest.fixture
def cli(cli_server: Server) -> Cli:
    """The CLI pointed at :func:`cli_server` with an admin token of tenant ``acme``."""
    return Cli(address=cli_server.address, token=make_token())
