"""WorkflowService over real gRPC on 127.0.0.1, against baselines measured in the same run.

1. Per-step overhead: ``content_generation`` runs (no approval) streamed to their end through the
   real server, against the same compiled graph invoked directly with LangGraph in this process
   on the same SQLite checkpointer (``durability="sync"``, the same deps), interleaved run by
   run. The LLM is the OpenAI-compatible test server with no latency.
2. Time to the first event of StreamRun (p50, p90), from the same served runs.
3. ``--concurrent`` streamed runs at once against the test server with 200 ms latency (a server
   whose ``workflow_concurrency`` is that number): wall time against the larger of the latency
   bound (LLM calls per run in sequence x latency) and the gateway's CPU bound (as many calls
   through ``LlmGateway.complete`` alone, as many at once, against the zero-latency server).

The LLM test servers run as child processes (``python -m tests.fixtures.llm_server``), so their
CPU is not charged to the service; client and service share this process. ``--quick`` is a
smoke run of well under a minute. ``--redis`` starts a ``redis-server`` and serves with it: the
run queue on Redis Streams and the bus on pub/sub, as replicas sharing a Redis run. The
``engine`` row of part 1 runs the server's engine in this process without gRPC, which splits
the served overhead between the engine and the RPC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio
import numpy as np
from _serving import llm_server, write_llm_config
from _serving import serving as served
from _serving import token as bench_token
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc
from crm_ai_client import ServiceError
from langgraph.checkpoint.memory import InMemorySaver

from ai_orchestration.llm import CallContext, ChatMessage, CompletionRequest, LlmGateway
from ai_orchestration.server import Server
from ai_orchestration.storage import DeliveryLedger, utc_now
from ai_orchestration.wire.workflows import document
from ai_orchestration.workflows import EventKind, JsonDoc, RunEvent, RunRecord, RunState
from ai_orchestration.workflows.engine import RunEngine
from ai_orchestration.workflows.graphs import LangGraphRunner, WorkflowDeps
from ai_orchestration.workflows.graphs._context import RunContext
from ai_orchestration.workflows.graphs._graphs import CONTENT_GENERATION, Graph, build_graphs

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    from crm.ai.v1.workflow_pb2_grpc import WorkflowServiceAsyncStub as Stub

ROOT: Final[Path] = Path(__file__).resolve().parents[1]
TENANT: Final[str] = "bench"
RATIO_GOAL: Final[float] = 1.5
"""Served per-step time as a multiple of LangGraph's own (issue #5)."""
STEP_GOAL_MS: Final[float] = 2.0
"""Orchestration time added per graph step, with durable SQLite checkpoints (issue #5)."""
FIRST_EVENT_GOAL_MS: Final[float] = 20.0
"""StreamRun's first event at the median (issue #5)."""
BOUND_GOAL: Final[float] = 1.2
"""Concurrent runs' wall time as a multiple of the larger bound (issue #5)."""
STREAM_TIMEOUT: Final[float] = 120.0
"""gRPC deadline of one StreamRun."""
SUCCEEDED: Final = workflow_pb2.Run.State.STATE_SUCCEEDED


class BenchError(Exception):
    """A failed call or a wrong answer: printed, and the script exits with status 1."""


@dataclass(frozen=True, slots=True)
class Options:
    """What to run (see ``--help``)."""

    runs: int
    warmup: int
    seconds: float
    concurrent: int
    latency_ms: float
    phase_seconds: float
    redis: bool


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line; ``--quick`` changes the defaults, flags still win."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run, well under a minute")
    parser.add_argument("--runs", type=int, help="runs per side for the per-step rows (60)")
    parser.add_argument("--warmup", type=int, help="unmeasured runs per side first (5)")
    parser.add_argument("--seconds", type=float, help="longest per-step measurement (60)")
    parser.add_argument(
        "--concurrent", type=int, help="streamed runs at once (200; the issue's 500 takes ~5 min)"
    )
    parser.add_argument("--latency-ms", type=float, help="LLM latency of part 3 (200)")
    parser.add_argument(
        "--phase-seconds", type=float, help="deadline of each concurrent phase (600)"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="serve with a Redis (started here): the run queue on Redis Streams and the bus "
        "on pub/sub, as replicas that share a Redis run",
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick

    def pick(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    options = Options(
        runs=int(pick(args.runs, 60, 8)),
        warmup=int(pick(args.warmup, 5, 2)),
        seconds=float(pick(args.seconds, 60.0, 15.0)),
        concurrent=int(pick(args.concurrent, 200, 20)),
        latency_ms=float(pick(args.latency_ms, 200.0, 200.0)),
        phase_seconds=float(pick(args.phase_seconds, 600.0, 120.0)),
        redis=bool(args.redis),
    )
    if min(options.runs, options.concurrent) < 1 or options.warmup < 0:
        parser.error("--runs and --concurrent must be positive, --warmup not negative")
    if options.concurrent > 1000:
        parser.error("--concurrent must be at most 1000 (Settings.workflow_concurrency)")
    if min(options.seconds, options.phase_seconds) <= 0 or options.latency_ms < 0:
        parser.error("--seconds and --phase-seconds must be positive, --latency-ms not negative")
    return options


# --- the LLM test server, the service, the client ------------------------------------------------


@contextlib.asynccontextmanager
async def redis_server(wanted: bool) -> AsyncIterator[str]:
    """A throw-away ``redis-server`` on a free loopback port (no persistence), when
    ``wanted``; yields its URL, or ``""``."""
    if not wanted:
        yield ""
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", directory,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.025)
            else:
                raise BenchError(f"redis-server did not listen on port {port}")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            await process.wait()


@contextlib.asynccontextmanager
async def serving(base_url: str, *, concurrency: int, redis_url: str = "") -> AsyncIterator[Server]:
    """The real server on port 0: SQLite in a temporary directory, LLM caches off (every run
    reaches the LLM), ``workflow_concurrency`` = ``concurrency``; with ``redis_url``, runs
    queue on Redis Streams."""
    async with served(
        "bench-workflows-",
        llm_config_file=lambda data_dir: write_llm_config(data_dir / "llm.yaml", base_url),
        llm_cache_ttl_seconds=0,
        workflow_concurrency=concurrency,
        redis_url=redis_url,
    ) as server:
        yield server


def token() -> str:
    """An HS256 token of the benchmark tenant, valid for the run."""
    return bench_token(TENANT, hours=1.0)


CONTENT_PARTS: Final[str] = json.dumps(
    {
        "subject": "Our product webinar",
        "goal": "I would like to invite you to the product webinar.",
        "points": "It brings a live demo and a Q&A with the founders.",
    }
)
"""The test servers' answer: parts the content agent keeps for :func:`content_input` at once, so
a run is one LLM call."""


def content_input() -> workflow_pb2.ContentGenerationInput:
    """The benchmark's workflow input (the API tests' content run)."""
    return workflow_pb2.ContentGenerationInput(
        recipient=workflow_pb2.Recipient(name="Ada Lovelace", company="Analytical Engines"),
        purpose="invite to the product webinar",
        channel=workflow_pb2.CHANNEL_EMAIL,
        key_points=["live demo", "Q&A with the founders"],
    )


def describe(error: grpc.aio.AioRpcError) -> str:
    """Status code, message, reason and correlation id of a failed call."""
    parsed = ServiceError.from_rpc_error(error)
    parts = [f"{parsed.code.name}: {parsed.message}"]
    if parsed.reason:
        parts.append(f"reason={parsed.reason}")
    if parsed.correlation_id:
        parts.append(f"correlation id {parsed.correlation_id}")
    return "; ".join(parts)


# --- one run, served or direct ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTiming:
    """One run to its end."""

    elapsed: float
    """Seconds from the call to the end of the run."""
    steps: int
    """Graph nodes that finished (``step_finished`` events)."""
    llm_calls: int
    """LLM calls answered (``usage`` events)."""
    first_event: float = float("nan")
    """Seconds to the first streamed event (served runs)."""


async def served_run(
    stub: Stub, metadata: tuple[tuple[str, str], ...], *, deadline: float = STREAM_TIMEOUT
) -> RunTiming:
    """StreamRun of one content run, read to its last event.

    Raises:
        BenchError: the call failed or the run did not succeed.
    """
    request = workflow_pb2.StreamRunRequest(
        run=workflow_pb2.StartRunRequest(
            request_id=str(uuid.uuid4()), content_generation=content_input()
        )
    )
    steps = calls = 0
    first = float("nan")
    last: workflow_pb2.RunEvent | None = None
    output: workflow_pb2.ContentGenerationOutput | None = None
    start = time.perf_counter()
    try:
        async for event in stub.StreamRun(request, metadata=metadata, timeout=deadline):
            if last is None:
                first = time.perf_counter() - start
            kind = event.WhichOneof("event")
            steps += kind == "step_finished"
            calls += kind == "usage"
            if kind == "completed":
                output = event.completed.content_generation
            last = event
    except grpc.aio.AioRpcError as error:
        raise BenchError(f"StreamRun: {describe(error)}") from error
    elapsed = time.perf_counter() - start
    if last is None or last.state_changed.to != SUCCEEDED:
        raise BenchError(f"StreamRun ended without success: {last}")
    if output is None or output.degraded_steps:
        raise BenchError(f"run {last.run_id} used a fallback (degraded): {output}")
    return RunTiming(elapsed, steps, calls, first)


class CountingSink:
    """The direct runs' event sink: counts, persists nothing (LangGraph alone)."""

    def __init__(self) -> None:
        self.sequence = 0
        self.steps = 0
        self.llm_calls = 0

    async def emit(self, kind: EventKind, payload: JsonDoc) -> int:
        self.sequence += 1
        self.steps += kind is EventKind.STEP_FINISHED
        self.llm_calls += kind is EventKind.USAGE
        return self.sequence


async def direct_run(graph: Graph, deps: WorkflowDeps) -> RunTiming:
    """The same workflow invoked with LangGraph in this process, a fresh thread per run.

    Raises:
        BenchError: the run did not deliver its draft.
    """
    run_id = uuid.uuid4().hex
    run = RunRecord(
        run_id=run_id,
        tenant_id=TENANT,
        workflow=CONTENT_GENERATION,
        workflow_version="1",
        state=RunState.RUNNING,
        priority=0,
        request_id=run_id,
        labels={},
        input=document(content_input()),
        timeout_seconds=900.0,
        created_at=utc_now(),
    )
    sink = CountingSink()
    context = RunContext(run=run, events=sink, deps=deps)
    start = time.perf_counter()
    state = await graph.ainvoke(
        {"input": run.input, "degraded_steps": []},
        {"configurable": {"thread_id": run_id}},
        context=context,
        durability="sync",
    )
    elapsed = time.perf_counter() - start
    if not state.get("delivered") or state.get("degraded_steps"):
        raise BenchError(f"direct run {run_id} did not deliver, or degraded: {state}")
    return RunTiming(elapsed, sink.steps, sink.llm_calls)


async def engine_run(engine: RunEngine) -> RunTiming:
    """The run the server's StreamRun makes, through its engine in this process: start, then
    watch to the end; no gRPC. Shows how the served overhead splits between the engine (queue,
    event log) and the RPC (messages, streaming).

    Raises:
        BenchError: the run did not succeed, or degraded.
    """
    request_id = str(uuid.uuid4())
    steps = calls = 0
    last: RunEvent | None = None
    start = time.perf_counter()
    started = await engine.start_run(
        TENANT,
        workflow=CONTENT_GENERATION,
        input_document=document(content_input()),
        request_id=request_id,
        request_digest=hashlib.sha256(request_id.encode()).hexdigest(),
    )
    run = started.run
    known = started.events
    async for event in engine.watch(TENANT, run.run_id, until_waiting=True, run=run, known=known):
        steps += event.kind is EventKind.STEP_FINISHED
        calls += event.kind is EventKind.USAGE
        last = event
    elapsed = time.perf_counter() - start
    if last is None or last.payload.get("to") != RunState.SUCCEEDED.value:
        raise BenchError(f"engine run {run.run_id} ended without success: {last}")
    output = (await engine.get(TENANT, run.run_id)).output or {}
    content = output.get(CONTENT_GENERATION)
    if not isinstance(content, dict) or content.get("degraded_steps"):
        raise BenchError(f"engine run {run.run_id} used a fallback (degraded): {output}")
    return RunTiming(elapsed, steps, calls)


# --- part 1 and 2: per step, first event ------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """The runs of one row."""

    runs: list[RunTiming] = field(default_factory=list)

    def per_step_ms(self, q: float = 50) -> float:
        values = [r.elapsed / r.steps for r in self.runs if r.steps]
        return float(np.percentile(values, q) * 1000) if values else float("nan")

    def mean(self, attribute: str) -> float:
        values = [float(getattr(r, attribute)) for r in self.runs]
        return float(np.mean(values)) if values else float("nan")

    def first_event_ms(self, q: float) -> float:
        values = [r.first_event for r in self.runs]
        return float(np.percentile(values, q) * 1000) if values else float("nan")


def verdict(met: bool) -> str:
    """Whether a goal is met, for the printout."""
    return "met" if met else "NOT met"


async def bench_per_step(
    options: Options, server: Server, stub: Stub, metadata: tuple[tuple[str, str], ...]
) -> int:
    """Prints the per-step and first-event tables; returns the LLM calls per run."""
    engine = server.workflows
    runner = engine.runner if engine else None
    if engine is None or not isinstance(runner, LangGraphRunner) or server.llm is None:
        raise BenchError("the server does not run the LangGraph runner")
    graph = runner.graph(CONTENT_GENERATION)  # compiled once, on the server's checkpointer
    memory_graph = build_graphs(InMemorySaver())[CONTENT_GENERATION]
    deps = WorkflowDeps.from_stack(
        server.llm, scoring=server.scoring, delivery=DeliveryLedger(database=server.database)
    )
    rows: dict[str, Callable[[], Awaitable[RunTiming]]] = {
        "StreamRun": lambda: served_run(stub, metadata),
        "engine": lambda: engine_run(engine),
        "LangGraph": lambda: direct_run(graph, deps),
        "in-memory": lambda: direct_run(memory_graph, deps),
    }
    samples = {name: Samples() for name in rows}
    names = list(rows)
    deadline = time.perf_counter() + options.seconds
    for index in range(options.warmup + options.runs):
        if index > options.warmup and time.perf_counter() > deadline:
            break  # after one measured round at least
        # Each round starts one row further: every row runs alike after each of the others.
        for offset in range(len(names)):
            name = names[(index + offset) % len(names)]
            timing = await rows[name]()
            if index >= options.warmup:
                samples[name].runs.append(timing)
    served, direct = samples["StreamRun"], samples["LangGraph"]
    print(
        f"\n1. Per-step time, content_generation without approval, zero-latency LLM "
        f"({len(served.runs)} runs per row after {options.warmup} warm-up, interleaved)"
    )
    print(f"{'':<11}{'steps':>7}{'LLM calls':>11}{'run ms':>9}{'step p50':>10}{'step p90':>10}")
    notes = {
        "StreamRun": "served over gRPC, SQLite checkpoints + event log",
        "engine": "info: the server's engine in-process (queue, event log), no gRPC",
        "LangGraph": "same compiled graph and checkpointer, ainvoke in-process",
        "in-memory": "info: the graph on InMemorySaver (no durable checkpoint)",
    }
    for name, sample in samples.items():
        print(
            f"{name:<11}{sample.mean('steps'):>7.1f}{sample.mean('llm_calls'):>11.1f}"
            f"{sample.mean('elapsed') * 1000:>9.1f}{sample.per_step_ms(50):>10.2f}"
            f"{sample.per_step_ms(90):>10.2f}  {notes[name]}"
        )
    ratio = served.per_step_ms() / direct.per_step_ms()
    added = served.per_step_ms() - direct.per_step_ms()
    print(
        f"StreamRun / LangGraph per step  {ratio:.2f}  "
        f"(goal <= {RATIO_GOAL}: {verdict(ratio <= RATIO_GOAL)})"
    )
    print(
        f"added per step  {added:.2f} ms  (StreamRun - LangGraph at p50, durable SQLite "
        f"checkpoints; goal <= {STEP_GOAL_MS:g} ms: {verdict(added <= STEP_GOAL_MS)})"
    )
    p50, p90 = served.first_event_ms(50), served.first_event_ms(90)
    print(f"\n2. StreamRun time to first event ({len(served.runs)} runs, idle server)")
    print(
        f"p50 {p50:.2f} ms   p90 {p90:.2f} ms  "
        f"(goal p50 <= {FIRST_EVENT_GOAL_MS:g} ms: {verdict(p50 <= FIRST_EVENT_GOAL_MS)})"
    )
    return round(served.mean("llm_calls"))


# --- part 3: concurrent streamed runs -------------------------------------------------------


async def gateway_bound(gateway: LlmGateway, *, tasks: int, calls: int, seconds: float) -> float:
    """Seconds for ``tasks`` concurrent tasks making ``calls`` sequential gateway calls each:
    the draft prompt first, then revisions, as a content run makes them.

    Raises:
        BenchError: a call came back degraded, or the phase passed its deadline.
    """
    draft = (
        "Write a short outreach email to Ada Lovelace at Analytical Engines. Goal: invite to "
        "the product webinar. Tone: professional and warm. Context:\n- live demo\n"
        "- Q&A with the founders\n- Channel: email (at most 5000 characters)"
    )
    revision = "Revise this draft so it fixes the issues below.\nDraft:\n" + draft
    context = CallContext(tenant_id=TENANT, run_id="bench-bound", step="content")

    async def one_task() -> None:
        for number in range(calls):
            request = CompletionRequest(
                model="fast",
                messages=(ChatMessage("user", revision if number else draft),),
                context=context,
                max_tokens=400,
                use_cache=False,
            )
            completion = await gateway.complete(request)
            if completion.degraded or not completion.text:
                raise BenchError(f"gateway call degraded: {completion.error}")

    start = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(one_task() for _ in range(tasks)))
    except TimeoutError as error:
        raise BenchError(f"gateway bound: not done after {seconds:g} s") from error
    return time.perf_counter() - start


async def langgraph_alone(server: Server, *, runs: int, seconds: float) -> float:
    """Seconds for ``runs`` content runs at once through the server's compiled graph and
    checkpointer in this process (no gRPC, queue or event log): LangGraph's own CPU floor.

    Raises:
        BenchError: a run did not deliver, or the phase passed its deadline.
    """
    runner = server.workflows.runner if server.workflows else None
    if not isinstance(runner, LangGraphRunner) or server.llm is None:
        raise BenchError("the server does not run the LangGraph runner")
    graph = runner.graph(CONTENT_GENERATION)
    deps = WorkflowDeps.from_stack(
        server.llm, scoring=server.scoring, delivery=DeliveryLedger(database=server.database)
    )
    start = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(direct_run(graph, deps) for _ in range(runs)))
    except TimeoutError as error:
        raise BenchError(f"LangGraph alone: not done after {seconds:g} s") from error
    return time.perf_counter() - start


async def concurrent_runs(
    stub: Stub, metadata: tuple[tuple[str, str], ...], *, runs: int, seconds: float
) -> tuple[float, list[RunTiming]]:
    """Wall time of ``runs`` StreamRuns started at once, each read to its end, and the runs
    that ended within ``seconds``: the streams still open then are closed (a slow machine is
    a result, not an error; closing a stream does not cancel its run).

    Raises:
        BenchError: a run failed.
    """
    start = time.perf_counter()
    # The gRPC deadline only backs up the phase's: the phase ends first.
    tasks = [
        asyncio.create_task(served_run(stub, metadata, deadline=seconds + 30)) for _ in range(runs)
    ]
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    wall = time.perf_counter() - start
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    failed = [task.exception() for task in done if task.exception() is not None]
    if failed:
        raise BenchError(f"{len(failed)} of {runs} concurrent runs failed; first: {failed[0]}")
    return wall, [task.result() for task in done]


def seconds_at(values: Sequence[float], q: float) -> float:
    """Percentile ``q`` of ``values`` (NaN when empty)."""
    return float(np.percentile(values, q)) if values else float("nan")


async def bench_concurrent(
    options: Options,
    cpu_bound: float,
    framework: float,
    calls: int,
    llm_url: str,
    *,
    redis_url: str = "",
) -> None:
    """Prints the concurrent table; ``cpu_bound`` and ``framework`` (LangGraph alone) were
    measured on the zero-latency server."""
    runs = options.concurrent
    latency_bound = calls * options.latency_ms / 1000
    async with (
        serving(llm_url, concurrency=runs, redis_url=redis_url) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub: Stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        metadata = (("authorization", f"Bearer {token()}"),)
        await served_run(stub, metadata)  # warm: connection, templates, litellm client
        wall, timings = await concurrent_runs(
            stub, metadata, runs=runs, seconds=options.phase_seconds
        )
    bound = max(latency_bound, cpu_bound)
    which = "latency" if latency_bound >= cpu_bound else "gateway CPU"
    elapsed = [t.elapsed for t in timings]
    samples = Samples(timings)
    print(
        f"\n3. {runs} concurrent StreamRuns, LLM latency {options.latency_ms:g} ms, server "
        f"workflow_concurrency={runs}"
    )
    print(f"latency bound      {latency_bound:8.2f} s  ({calls} LLM calls in sequence per run)")
    print(
        f"gateway CPU bound  {cpu_bound:8.2f} s  ({runs} x {calls} LlmGateway.complete calls, "
        f"{runs} at once, zero-latency server)"
    )
    print(
        f"LangGraph alone    {framework:8.2f} s  (info: {runs} runs at once through the compiled "
        f"graph in-process, no gRPC, queue or event log, zero-latency server)"
    )
    print(
        f"concurrent runs    {wall:8.2f} s  ({len(timings)} of {runs} runs ended, "
        f"{sum(t.llm_calls for t in timings)} LLM calls; run p50 {seconds_at(elapsed, 50):.2f} s, "
        f"p90 {seconds_at(elapsed, 90):.2f} s; first event p50 {samples.first_event_ms(50):.0f} "
        f"ms, p90 {samples.first_event_ms(90):.0f} ms)"
    )
    ratio = wall / bound
    if len(timings) < runs:
        print(
            f"wall / {which} bound  > {ratio:.2f}  (stopped after --phase-seconds "
            f"{options.phase_seconds:g}; goal <= {BOUND_GOAL}: NOT met)"
        )
        return
    print(
        f"wall / {which} bound  {ratio:.2f}  (goal <= {BOUND_GOAL}: {verdict(ratio <= BOUND_GOAL)})"
    )
    print(f"wall / LangGraph alone  {wall / framework:.2f}  (info)")


async def run(options: Options) -> int:
    """Runs the three parts; returns the exit status (1 on a failed call or a wrong answer)."""
    started = time.perf_counter()
    print(f"machine              {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    try:
        async with (
            llm_server(0.0, reply=CONTENT_PARTS) as fast_url,
            llm_server(options.latency_ms, reply=CONTENT_PARTS) as slow_url,
            redis_server(options.redis) as redis_url,
        ):
            queue = "Redis Streams (--redis)" if redis_url else "the run table (SQLite)"
            print(f"run queue            {queue}")
            starting = time.perf_counter()
            async with serving(fast_url, concurrency=8, redis_url=redis_url) as server:
                print(f"server start         {time.perf_counter() - starting:.1f} s")
                async with grpc.aio.insecure_channel(server.address) as channel:
                    stub: Stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
                    metadata = (("authorization", f"Bearer {token()}"),)
                    calls = await bench_per_step(options, server, stub, metadata)
                assert server.llm is not None
                cpu_bound = await gateway_bound(
                    server.llm.gateway,
                    tasks=options.concurrent,
                    calls=calls,
                    seconds=options.phase_seconds,
                )
                framework = await langgraph_alone(
                    server, runs=options.concurrent, seconds=options.phase_seconds
                )
            await bench_concurrent(
                options, cpu_bound, framework, calls, slow_url, redis_url=redis_url
            )
    except BenchError as error:
        print(f"FAILED {error}")
        return 1
    print(f"\ntotal                {time.perf_counter() - started:.1f} s")
    return 0


def main() -> None:
    """Runs the benchmark once and prints the figures."""
    if isinstance(sys.stdout, io.TextIOWrapper):  # progress shows through a pipe (make bench)
        sys.stdout.reconfigure(line_buffering=True)
    raise SystemExit(asyncio.run(run(parse_options())))


if __name__ == "__main__":
    main()
