"""Shared fixtures: a real in-process grpc.aio server on port 0 with HS256 auth."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc.aio
import jwt
import pytest

from ai_orchestration.config import Settings
from ai_orchestration.server import Server
from ai_orchestration.storage import Database

pytest_plugins = [
    "tests.fixtures.llm_server",
    "tests.fixtures.network_guard",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
]

# litellm must never reach for the network (later issues); set before anything imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECRET = "test-secret-with-at-least-32-bytes-of-entropy!"
BOOTSTRAP_ROWS = 20_000
"""Synthetic leads behind the test servers' global model (trained once per test process)."""

TokenFactory = Callable[..., str]


def make_token(
    *,
    tenant_id: str = "acme",
    roles: Sequence[str] = ("admin",),
    secret: str = SECRET,
    expires_in: float = 300,
    **claims: object,
) -> str:
    """An HS256 token as an identity provider would issue it."""
    payload: dict[str, object] = {
        "sub": "svc-test",
        "tenant_id": tenant_id,
        "roles": list(roles),
        "exp": int(time.time() + expires_in),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture(autouse=True)
async def _release_litellm_clients() -> AsyncIterator[None]:
    """Close the HTTP clients litellm cached during the test, on the test's own event loop.

    litellm keeps clients process-wide, keyed by event loop; every test has its own loop, so
    without this they outlive it and surface later (in another test) as ResourceWarnings.
    """
    yield
    if "litellm" in sys.modules:
        from ai_orchestration.llm import release_litellm_clients  # noqa: PLC0415

        await release_litellm_clients()


@pytest.fixture
def token() -> TokenFactory:
    """Factory of signed tokens (tenant, roles, expiry configurable)."""
    return make_token


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[Server]:
    """Migrate the settings' database and serve until the block ends."""
    async with Database.from_url(settings.resolved_database_url()) as database:
        await database.migrate()
        async with Server(settings=settings, database=database) as running:
            yield running


def server_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test server: HS256 auth with :data:`SECRET` on 127.0.0.1:<free port>,
    SQLite under ``data_dir``, a small bootstrap model; ``overrides`` set any other field."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "auth_hs256_secret": SECRET,
        "shutdown_grace_seconds": 1,
        "scoring_bootstrap_rows": BOOTSTRAP_ROWS,
        # Chunks in a thread: worker processes are tested where asked for
        # (tests/api/test_batch_workers.py), not launched by every test server.
        "scoring_batch_workers": 0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """A real server with HS256 auth on 127.0.0.1:<free port>, SQLite under tmp_path."""
    async with running_server(server_settings(tmp_path)) as running:
        yield running


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    """A plaintext channel to the server (no credentials attached)."""
    async with grpc.aio.insecure_channel(server.address) as chan:
        yield chan
