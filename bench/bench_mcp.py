"""Per-call cost of an MCP tool call through ``ToolPool``, against baselines in the same run.

Three ways to call the test server's ``echo`` tool (``tests/fixtures/mcp_servers.py``), for each
transport (stdio: a subprocess per session; Streamable HTTP: one server subprocess on loopback):

- ``bare``: a persistent SDK ``ClientSession.call_tool`` (the floor: what any client pays);
- ``pool``: ``ToolPool.call_tool`` (breaker, timeouts, metrics, span, name resolution) over its
  own persistent session; the goal is at most 1.2x the bare session;
- ``per call``: a new SDK session for every call, as ``langchain-mcp-adapters`` does by default.

``bare`` and ``pool`` are measured in alternating blocks; each round's ratio is the pool's mean
over the bare session's of that round, and the ratio printed is the median of the rounds (this
shared machine drifts within a minute). Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import CollectorRegistry

from ai_orchestration.tools import ToolPool, parse_servers

_ROOT: Final = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fixtures.mcp_servers import ServerProcess, stdio_args  # noqa: E402

GOAL: Final[float] = 1.2
Call = Callable[[], Awaitable[object]]


@asynccontextmanager
async def bare_session(transport: str, target: str, state: Path) -> AsyncIterator[ClientSession]:
    """An initialised SDK session to the test server, nothing else around it."""
    if transport == "stdio":
        params = StdioServerParameters(
            command=sys.executable, args=stdio_args("bench", state), cwd=_ROOT
        )
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, read_timeout_seconds=30) as session,
        ):
            await session.initialize()
            yield session
        return
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=300.0)) as client,
        streamable_http_client(target, http_client=client) as (read, write),
        ClientSession(read, write, read_timeout_seconds=30) as session,
    ):
        await session.initialize()
        yield session


def pool_config(transport: str, target: str, state: Path) -> str:
    if transport == "stdio":
        args = ", ".join(f'"{arg}"' for arg in stdio_args("bench", state))
        where = f'transport: stdio\n    command: "{sys.executable}"\n    args: [{args}]\n'
        where += f'    cwd: "{_ROOT}"'
    else:
        where = f'transport: streamable_http\n    url: "{target}"'
    return f'servers:\n  - name: bench\n    {where}\n    allowed_tools: ["echo"]\n'


async def timed(call: Call, count: int) -> float:
    """Mean seconds per call over ``count`` sequential calls."""
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count


async def measure(transport: str, target: str, state: Path, args: argparse.Namespace) -> None:
    servers = parse_servers(pool_config(transport, target, state), environ={})
    async with (
        bare_session(transport, target, state / "bare") as session,
        ToolPool(servers, registry=CollectorRegistry()) as pool,
    ):

        async def bare() -> object:
            return await session.call_tool("echo", {"text": "x"})

        async def pooled() -> object:
            return await pool.call_tool("bench__echo", {"text": "x"})

        await timed(bare, 20)
        await timed(pooled, 20)
        bare_means: list[float] = []
        pool_means: list[float] = []
        for _ in range(args.rounds):
            bare_means.append(await timed(bare, args.calls))
            pool_means.append(await timed(pooled, args.calls))
    ratios = [p / b for p, b in zip(pool_means, bare_means, strict=True)]

    per_call_count = args.per_call_stdio if transport == "stdio" else args.per_call_http

    async def fresh() -> object:
        async with bare_session(transport, target, state / "fresh") as one:
            return await one.call_tool("echo", {"text": "x"})

    per_call = await timed(fresh, per_call_count)
    bare_ms = statistics.median(bare_means) * 1000
    pool_ms = statistics.median(pool_means) * 1000
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= GOAL else "not met"
    print(
        f"| {transport} | {bare_ms:.3f} ms | {pool_ms:.3f} ms | {ratio:.3f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) | <= {GOAL}x: {verdict} | "
        f"{per_call * 1000:.1f} ms ({per_call * 1000 / bare_ms:.0f}x bare, "
        f"{per_call_count} calls) |",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    print(
        f"{args.rounds} rounds of {args.calls} calls per way, sequential, "
        "median of the rounds (min-max of the per-round ratios)\n"
    )
    print("| transport | bare session | pool | pool / bare | goal | session per call |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        await measure("stdio", "", state / "stdio", args)
        http = ServerProcess("bench", state / "http")
        http.start()
        try:
            await measure("streamable_http", http.url, state / "http", args)
        finally:
            http.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300, help="calls per block")
    parser.add_argument("--rounds", type=int, default=7, help="alternating blocks per way")
    parser.add_argument("--per-call-stdio", type=int, default=5, help="session-per-call calls")
    parser.add_argument("--per-call-http", type=int, default=30, help="session-per-call calls")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    options = parser.parse_args()
    if options.quick:
        options.calls, options.rounds = 50, 3
        options.per_call_stdio, options.per_call_http = 2, 5
    asyncio.run(main(options))
