"""The tool pool against real MCP servers: one over stdio, one over Streamable HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ai_orchestration.errors import NotFoundError
from ai_orchestration.llm import RedisBreakerStore
from ai_orchestration.tools import (
    MCP_BREAKER_PREFIX,
    MCP_CIRCUIT_OPEN,
    MCP_SERVER_ERROR,
    MCP_SERVER_UNAVAILABLE,
    MCP_TOOL_TIMEOUT,
    ToolPool,
    ToolUnavailableError,
)
from tests.fixtures.mcp_servers import ServerProcess, count_lines
from tests.tools.conftest import http_entry, servers, stdio_entry

FAST_BREAKER = {"allowed_fails": 1, "window": 60, "cooldown": 5}


class FakeClock:
    """The breakers' clock, moved by the test (no test waits for a cooldown)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_discovery_prefixes_tools_so_two_servers_with_one_name_both_work(
    tmp_path: Path, http_server: ServerProcess
) -> None:
    config = servers(
        stdio_entry("alpha", tmp_path / "alpha", allowed_tools=["echo", "slow"]),
        http_entry("beta", http_server.url, prefix="b"),
    )
    async with ToolPool(config) as pool:
        names = {spec.name for spec in pool.list_tools()}
        assert {"alpha__echo", "alpha__slow", "b__echo", "b__secret"} <= names
        assert "alpha__secret" not in names  # not allowed
        assert (await pool.call_tool("alpha__echo", {"text": "hi"})).text == "alpha:hi"
        assert (await pool.call_tool("b__echo", {"text": "hi"})).text == "beta:hi"
        with pytest.raises(NotFoundError):
            await pool.call_tool("alpha__secret")
        with pytest.raises(NotFoundError):
            await pool.call_tool("nobody__echo", {"text": "hi"})


async def test_one_persistent_session_serves_every_call(
    tmp_path: Path, http_server: ServerProcess
) -> None:
    config = servers(stdio_entry("alpha", tmp_path / "alpha"), http_entry("beta", http_server.url))
    async with ToolPool(config) as pool:
        for i in range(20):
            await pool.call_tool("alpha__echo", {"text": str(i)})
            await pool.call_tool("beta__echo", {"text": str(i)})
        health = await pool.health()
    assert count_lines(tmp_path / "alpha" / "calls") == 20
    assert count_lines(http_server.state / "calls") == 20
    assert count_lines(tmp_path / "alpha" / "sessions") == 1
    assert count_lines(http_server.state / "sessions") == 1
    assert health["alpha"].sessions_opened == health["beta"].sessions_opened == 1


async def test_a_slow_call_times_out_and_the_session_stays(tmp_path: Path) -> None:
    config = servers(stdio_entry("alpha", tmp_path / "alpha", timeouts={"call": 1}))
    async with ToolPool(config) as pool:
        with pytest.raises(ToolUnavailableError) as caught:
            await pool.call_tool("alpha__slow", {"seconds": 5})
        assert caught.value.reason == MCP_TOOL_TIMEOUT
        assert (await pool.call_tool("alpha__echo", {"text": "after"})).text == "alpha:after"
        assert (await pool.health())["alpha"].sessions_opened == 1


async def test_a_tool_error_is_a_result_not_a_failure(tmp_path: Path) -> None:
    config = servers(stdio_entry("alpha", tmp_path / "alpha", breaker=FAST_BREAKER))
    async with ToolPool(config) as pool:
        for _ in range(3):
            result = await pool.call_tool("alpha__fail", {"message": "no such company"})
            assert result.is_error
            assert "no such company" in result.text
        assert (await pool.health())["alpha"].breaker == "closed"


async def test_5xx_fails_the_call_and_opens_the_circuit_which_then_fails_fast(
    http_server: ServerProcess,
) -> None:
    config = servers(http_entry("beta", http_server.url, breaker=FAST_BREAKER))
    clock = FakeClock()
    async with ToolPool(config, clock=clock) as pool:
        (http_server.state / "fail500").touch()
        for _ in range(2):  # allowed_fails=1: the second failure opens the circuit
            with pytest.raises(ToolUnavailableError) as caught:
                await pool.call_tool("beta__echo", {"text": "x"})
            assert caught.value.reason == MCP_SERVER_ERROR
        assert (await pool.health())["beta"].breaker == "open"
        posts = count_lines(http_server.state / "posts")
        for _ in range(5):
            with pytest.raises(ToolUnavailableError) as caught:
                await pool.call_tool("beta__echo", {"text": "x"})
            assert caught.value.reason == MCP_CIRCUIT_OPEN
        assert count_lines(http_server.state / "posts") == posts  # never contacted

        (http_server.state / "fail500").unlink()
        clock.now += 5  # the cooldown
        assert (await pool.health())["beta"].breaker == "half_open"
        assert (await pool.call_tool("beta__echo", {"text": "back"})).text == "beta:back"
        assert (await pool.health())["beta"].breaker == "closed"


async def test_a_crashed_stdio_server_is_restarted(tmp_path: Path) -> None:
    config = servers(
        stdio_entry("alpha", tmp_path / "alpha", reconnect={"base_delay": 0.05, "max_delay": 0.2})
    )
    async with ToolPool(config) as pool:
        with pytest.raises(ToolUnavailableError) as caught:
            await pool.call_tool("alpha__crash")
        assert caught.value.reason == MCP_SERVER_ERROR

        async def reopened() -> bool:
            health = (await pool.health())["alpha"]
            return health.state == "up" and health.sessions_opened == 2

        await eventually(reopened)
        assert (await pool.call_tool("alpha__echo", {"text": "back"})).text == "alpha:back"
    assert count_lines(tmp_path / "alpha" / "sessions") == 2


async def test_a_failed_health_probe_reopens_the_session(http_server: ServerProcess) -> None:
    config = servers(
        http_entry("beta", http_server.url, reconnect={"base_delay": 0.05, "max_delay": 0.2})
    )
    async with ToolPool(config) as pool:
        assert await pool.probe("beta")
        (http_server.state / "fail500").touch()
        assert not await pool.probe("beta")

        async def down() -> bool:
            return (await pool.health())["beta"].state != "up"

        await eventually(down)
        (http_server.state / "fail500").unlink()

        async def up_again() -> bool:
            health = (await pool.health())["beta"]
            return health.state == "up" and health.sessions_opened == 2

        await eventually(up_again)
        assert (await pool.call_tool("beta__echo", {"text": "x"})).text == "beta:x"


@pytest.mark.parametrize("transport", ["stdio", "streamable_http"])
async def test_list_changed_makes_the_pool_list_the_tools_again(
    tmp_path: Path, http_server: ServerProcess, transport: str
) -> None:
    entry = (
        stdio_entry("alpha", tmp_path / "alpha", prefix="s")
        if transport == "stdio"
        else http_entry("beta", http_server.url, prefix="s")
    )
    async with ToolPool(servers(entry)) as pool:
        assert "s__newt" not in {spec.name for spec in pool.list_tools()}
        await pool.call_tool("s__add_tool", {"tool": "newt"})

        async def listed() -> bool:
            return "s__newt" in {spec.name for spec in pool.list_tools()}

        await eventually(listed)
        assert (await pool.call_tool("s__newt")).text == "added:newt"


async def test_headers_resolve_environment_references(http_server: ServerProcess) -> None:
    entry = http_entry("beta", http_server.url, headers={"X-Api-Key": "os.environ/BETA_KEY"})
    async with ToolPool(servers(entry, environ={"BETA_KEY": "k-123"})) as pool:
        result = await pool.call_tool("beta__header", {"key": "X-Api-Key"})
    assert result.text == "k-123"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_server_that_is_down_fails_calls_fast_and_start_still_returns(
    tmp_path: Path,
) -> None:
    config = servers(
        http_entry(
            "gone",
            f"http://127.0.0.1:{_closed_port()}/mcp",
            allowed_tools=["echo"],
            timeouts={"connect": 2},
            reconnect={"base_delay": 0.05, "max_delay": 0.2},
        ),
        stdio_entry("alpha", tmp_path / "alpha"),
    )
    async with ToolPool(config) as pool:
        health = await pool.health()
        assert health["gone"].state in ("connecting", "down")
        assert health["gone"].sessions_opened == 0
        assert health["gone"].last_error
        assert health["alpha"].state == "up"
        with pytest.raises(ToolUnavailableError) as caught:
            await pool.call_tool("gone__echo", {"text": "x"})
        assert caught.value.reason == MCP_SERVER_UNAVAILABLE
        assert (await pool.call_tool("alpha__echo", {"text": "x"})).text == "alpha:x"


async def test_close_is_idempotent_and_stops_the_stdio_server(tmp_path: Path) -> None:
    pool = ToolPool(servers(stdio_entry("alpha", tmp_path / "alpha")))
    await pool.start()
    await pool.close()
    await pool.close()
    assert (await pool.health())["alpha"].state == "closed"


async def test_metrics_and_spans_of_calls(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = servers(stdio_entry("alpha", tmp_path / "alpha", timeouts={"call": 1}))
    async with ToolPool(config, registry=registry, tracer=provider.get_tracer("t")) as pool:
        await pool.call_tool("alpha__echo", {"text": "x"})
        await pool.call_tool("alpha__fail", {"message": "m"})
        with pytest.raises(ToolUnavailableError):
            await pool.call_tool("alpha__slow", {"seconds": 5})
        up = registry.get_sample_value("aio_mcp_server_state", {"server": "alpha", "state": "up"})
        assert up == 1.0

    def calls(tool: str, outcome: str) -> float | None:
        labels = {"server": "alpha", "tool": f"alpha__{tool}", "outcome": outcome}
        return registry.get_sample_value("aio_mcp_tool_calls_total", labels)

    assert calls("echo", "ok") == 1.0
    assert calls("fail", "tool_error") == 1.0
    assert calls("slow", "timeout") == 1.0
    count = registry.get_sample_value(
        "aio_mcp_tool_call_duration_seconds_count", {"server": "alpha", "outcome": "ok"}
    )
    assert count == 1.0
    spans = {span.name: span for span in exporter.get_finished_spans()}
    echo = spans["tools/call alpha__echo"]
    assert echo.attributes is not None
    assert echo.kind is SpanKind.CLIENT
    assert echo.attributes["mcp.method.name"] == "tools/call"
    assert echo.attributes["gen_ai.operation.name"] == "execute_tool"
    assert echo.attributes["gen_ai.tool.name"] == "alpha__echo"
    assert echo.attributes["crm.mcp.server"] == "alpha"
    slow = spans["tools/call alpha__slow"]
    assert slow.attributes is not None
    assert slow.attributes["error.type"] == "timeout"
    closed = registry.get_sample_value(
        "aio_mcp_server_state", {"server": "alpha", "state": "closed"}
    )
    assert closed == 1.0


async def test_a_circuit_opened_by_one_replica_is_open_for_another_through_redis(
    http_server: ServerProcess, redis_url: str
) -> None:
    config = servers(http_entry("beta", http_server.url, breaker=FAST_BREAKER))
    first_client = aioredis.Redis.from_url(redis_url)
    second_client = aioredis.Redis.from_url(redis_url)
    first = RedisBreakerStore(client=first_client, prefix=MCP_BREAKER_PREFIX)
    second = RedisBreakerStore(client=second_client, prefix=MCP_BREAKER_PREFIX)
    try:
        async with (
            ToolPool(config, breaker_store=first) as replica_a,
            ToolPool(config, breaker_store=second) as replica_b,
        ):
            (http_server.state / "fail500").touch()
            for _ in range(2):
                with pytest.raises(ToolUnavailableError):
                    await replica_a.call_tool("beta__echo", {"text": "x"})
            posts = count_lines(http_server.state / "posts")
            with pytest.raises(ToolUnavailableError) as caught:
                await replica_b.call_tool("beta__echo", {"text": "x"})
            assert caught.value.reason == MCP_CIRCUIT_OPEN
            assert count_lines(http_server.state / "posts") == posts
            assert await first_client.exists(f"{MCP_BREAKER_PREFIX}beta")
    finally:
        await first_client.delete(f"{MCP_BREAKER_PREFIX}beta")
        await first_client.aclose()
        await second_client.aclose()


async def test_a_server_that_never_answers_or_cannot_start_does_not_hold_the_pool(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = servers(
            http_entry(
                "silent",
                f"http://127.0.0.1:{silent.getsockname()[1]}/mcp",
                timeouts={"connect": 0.5, "read": 0.5},
            ),
            {
                "name": "missing",
                "transport": "stdio",
                "command": str(tmp_path / "no-such-program"),
                "allowed_tools": ["*"],
            },
        )
        async with ToolPool(config) as pool:
            health = await pool.health()
            assert health["silent"].sessions_opened == 0
            assert "Timeout" in health["silent"].last_error
            assert health["missing"].sessions_opened == 0
            assert health["missing"].last_error
            with pytest.raises(ToolUnavailableError):
                await pool.call_tool("silent__echo", {"text": "x"})
        assert (await pool.health())["silent"].state == "closed"


async def test_an_unreachable_redis_breaker_store_admits_calls(tmp_path: Path) -> None:
    # No client-side retries: the breaker sits on every call's path (see RedisBreakerStore).
    client = aioredis.Redis(
        host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    store = RedisBreakerStore(client=client, prefix=MCP_BREAKER_PREFIX)
    try:
        async with ToolPool(
            servers(stdio_entry("alpha", tmp_path / "alpha")), breaker_store=store
        ) as pool:
            assert (await pool.call_tool("alpha__echo", {"text": "x"})).text == "alpha:x"
            assert (await pool.health())["alpha"].breaker == "closed"
    finally:
        await client.aclose()
