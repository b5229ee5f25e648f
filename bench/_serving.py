"""The real server for a benchmark: in-process on 127.0.0.1:0, SQLite in a temporary directory,
HS256 authentication with :data:`SECRET`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import jwt
import yaml

from ai_orchestration.config import Settings
from ai_orchestration.observability import Tracing
from ai_orchestration.server import Server
from ai_orchestration.storage import Database

SECRET: Final[str] = "bench-secret-with-at-least-32-bytes-of-entropy!"
ROOT: Final[Path] = Path(__file__).resolve().parents[1]


def token(tenant: str, *, hours: float = 2.0) -> str:
    """An admin's HS256 token of ``tenant``, valid for ``hours``."""
    claims = {"sub": "bench", "tenant_id": tenant, "roles": ["admin"]}
    return jwt.encode({**claims, "exp": int(time.time() + 3600 * hours)}, SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def serving(
    prefix: str, *, tracing: Tracing | None = None, **settings: Any
) -> AsyncIterator[Server]:
    """The server with ``settings`` on top of the benchmark defaults; ``prefix`` names its
    temporary directory. A callable setting is called with that directory first (for files
    that must live in it, such as an LLM config). ``tracing``: where its spans go (none)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        extra = {k: v(Path(data_dir)) if callable(v) else v for k, v in settings.items()}
        configured = Settings(
            **{
                "host": "127.0.0.1",
                "port": 0,
                "data_dir": Path(data_dir),
                "auth_hs256_secret": SECRET,
                "shutdown_grace_seconds": 1,
                "scoring_bootstrap_rows": 5_000,
                **extra,
            }
        )
        async with Database.from_url(configured.resolved_database_url()) as database:
            await database.migrate()
            async with Server(settings=configured, database=database, tracing=tracing) as server:
                yield server


@contextlib.asynccontextmanager
async def llm_server(latency_ms: float, *, reply: str) -> AsyncIterator[str]:
    """The OpenAI-compatible test server in a child process answering every completion with
    ``reply`` after ``latency_ms``; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fixtures.llm_server",
        "--port",
        "0",
        "--latency-ms",
        str(latency_ms),
        "--reply",
        reply,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"LLM test server did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def write_llm_config(path: Path, base_url: str) -> str:
    """A routing file sending the logical models the workflows use to the test server."""

    def deployment(name: str) -> dict[str, object]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": "openai/test-model",
                "api_base": base_url + "/v1",
                "api_key": "sk-bench",
            },
            "model_info": {
                "id": f"bench-{name}",
                "retries": 0,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
            },
        }

    path.write_text(yaml.safe_dump({"model_list": [deployment("fast"), deployment("smart")]}))
    return str(path)
