"""The service's Redis clients: each on its own bounded pool that waits for a free connection.

redis-py's default pool opens at most 100 connections and then raises ``Too many
connections`` at once: two hundred concurrent LLM calls or workflow runs hit that. A blocking
pool lets a command wait (up to ``wait_seconds``) for a connection another command returns,
which takes microseconds; only an overloaded or dead Redis makes it time out, and that raises a
:class:`redis.exceptions.ConnectionError` that callers treat as Redis being unreachable.
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["COMMAND_SECONDS", "MAX_CONNECTIONS", "redis_client"]

MAX_CONNECTIONS: Final[int] = 64
"""Connections one client opens at most (per replica and purpose)."""
COMMAND_SECONDS: Final[float] = 2.0
"""Default bound of connecting, waiting for a connection and a reply: a hung Redis fails a
command after this long instead of holding it forever."""


def redis_client(
    url: str,
    *,
    wait_seconds: float = COMMAND_SECONDS,
    command_seconds: float | None = COMMAND_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> aioredis.Redis:
    """A client of ``url`` owning a pool of at most ``max_connections``.

    ``wait_seconds`` bounds both connecting and waiting for a free connection;
    ``command_seconds`` bounds a command's reply (``None``: no bound, for a subscriber that
    blocks on reads by design). One attempt, no retry with backoff: on a call's path a dead
    Redis must cost its timeout once.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_seconds,
        socket_connect_timeout=wait_seconds,
        socket_timeout=command_seconds,
        retry=Retry(NoBackoff(), 1),
    )
    return aioredis.Redis.from_pool(pool)
