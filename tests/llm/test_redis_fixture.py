"""The Redis fixture serves a real, flushed database."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.fixtures.redis import RedisServer


async def test_redis_url_is_a_flushed_real_server(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("k", "v", ex=5)
        assert await client.get("k") == b"v"
        assert redis_server.command("GET", "k") == "v"
    finally:
        await client.aclose()
