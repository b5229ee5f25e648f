"""The real server for a benchmark: in-process on 127.0.0.1:0, SQLite in a temporary directory,
HS256 authentication with :data:`SECRET`."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import jwt

from ai_orchestration.config import Settings
from ai_orchestration.server import Server
from ai_orchestration.storage import Database

SECRET: Final[str] = "bench-secret-with-at-least-32-bytes-of-entropy!"


def token(tenant: str, *, hours: float = 2.0) -> str:
    """An admin's HS256 token of ``tenant``, valid for ``hours``."""
    claims = {"sub": "bench", "tenant_id": tenant, "roles": ["admin"]}
    return jwt.encode({**claims, "exp": int(time.time() + 3600 * hours)}, SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def serving(prefix: str, **settings: Any) -> AsyncIterator[Server]:
    """The server with ``settings`` on top of the benchmark defaults; ``prefix`` names its
    temporary directory. A callable setting is called with that directory first (for files
    that must live in it, such as an LLM config)."""
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
            async with Server(settings=configured, database=database) as server:
                yield server
