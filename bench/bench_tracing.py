"""The cost of tracing (issue #20), traced against untraced servers in the same run.

Four real servers in this process, identical but for their tracing:

- ``untraced``: no OTEL_* variables (no interceptor, no-op tracers): the baseline;
- ``0%``: the exporter configured but sampler ``always_off``: OpenTelemetry's interceptor and
  a no-op span per call, nothing recorded or sent — the floor of any traced configuration
  (what the instrumentation costs before a single span is kept);
- ``10%``: the OTLP/gRPC exporter to a real receiver, sampler ``parentbased_traceidratio`` at
  0.1 — the issue's production setting, goal within 10% of the baseline;
- ``100%``: the same exporter, every trace sampled (for information).

The receiver is rotel (an OpenTelemetry collector) on loopback, dropping what it receives, so
the exporter really serialises and sends its batches.

1. ScoreLead QPS at 64 concurrent calls, the servers measured in turns (each round
   starts with another one), so the machine's drift falls on all alike.
2. The per-step time of a served content run (StreamRun, zero-latency LLM, durable SQLite
   checkpoints), the servers in turns.

Run: ``python bench/bench_tracing.py [--seconds S] [--rounds N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import grpc.aio
import numpy as np
import rotel
from _serving import llm_server, serving, write_llm_config
from _serving import token as bench_token
from bench_scoring_service import CHANNEL_OPTIONS, LEAD_SEED, run_level
from bench_workflows import CONTENT_PARTS, BenchError, RunTiming, served_run
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc, workflow_pb2_grpc

from ai_orchestration.observability import Tracing
from ai_orchestration.scoring import generate_leads
from ai_orchestration.server import Server
from ai_orchestration.wire.scoring import lead_message

GOAL: Final[float] = 0.10
"""Most a 10%-sampled, exporting server may lose against the untraced one."""
CONCURRENCY: Final[int] = 64
ROTEL: Final[Path] = Path(rotel.__file__).with_name("rotel-agent")


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float
    rounds: int
    runs: int


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per ScoreLead measurement")
    parser.add_argument("--rounds", type=int, default=10, help="turns of the servers")
    parser.add_argument("--runs", type=int, default=20, help="content runs per server")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.runs < 2:
        parser.error("--seconds > 0, --rounds >= 1 and --runs >= 2")
    return Options(seconds=args.seconds, rounds=args.rounds, runs=args.runs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[int]:
    """rotel on loopback, dropping what it receives; yields its OTLP/gRPC port."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        str(ROTEL),
        "start",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{_free_port()}",
        "--exporter",
        "blackhole",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("the OTLP receiver did not start") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield port
    finally:
        process.terminate()
        await process.wait()


def tracings(port: int) -> dict[str, Mapping[str, str]]:
    """The OTEL_* variables of each server."""
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    return {
        "untraced": {},
        "0%": {**exporting, "OTEL_TRACES_SAMPLER": "always_off"},
        "10%": {
            **exporting,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
        "100%": {**exporting, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    }


@dataclass(slots=True)
class Row:
    """One server's measurements."""

    qps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    runs: list[RunTiming] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def step_ms(self, q: float = 50) -> float:
        values = [r.elapsed / r.steps for r in self.runs if r.steps]
        return float(np.percentile(values, q) * 1000) if values else float("nan")


def _turns(names: Sequence[str], round_number: int) -> list[str]:
    """The names, starting one further each round."""
    return [names[(round_number + i) % len(names)] for i in range(len(names))]


def _score_call(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> Callable[[scoring_pb2.ScoreLeadRequest], Awaitable[scoring_pb2.LeadScore]]:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)

    async def call(request: scoring_pb2.ScoreLeadRequest) -> scoring_pb2.LeadScore:
        answer: scoring_pb2.LeadScore = await stub.ScoreLead(request, metadata=metadata, timeout=30)
        return answer

    return call


async def bench_score_lead(
    options: Options, servers: Mapping[str, Server], rows: Mapping[str, Row]
) -> None:
    pool = generate_leads(2000, seed=LEAD_SEED)
    requests = [
        scoring_pb2.ScoreLeadRequest(lead=lead_message(f"lead-{i}", lead))
        for i, lead in enumerate(pool.leads)
    ]
    metadata = (("authorization", f"Bearer {bench_token('bench')}"),)
    channels = {
        name: grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        for name, server in servers.items()
    }
    try:
        for round_number in range(options.rounds + 1):  # round 0 warms up
            for name in _turns(list(servers), round_number):
                call = _score_call(channels[name], metadata)
                seconds = options.seconds if round_number else min(1.0, options.seconds)
                result = await run_level(
                    call,
                    requests,
                    concurrency=CONCURRENCY,
                    seconds=seconds,
                    max_requests=1_000_000,
                )
                if round_number:
                    rows[name].qps.append(result.qps)
                    rows[name].p99_ms.append(result.percentile_ms(99))
                rows[name].errors += result.errors
    finally:
        for channel in channels.values():
            await channel.close()


async def bench_steps(
    options: Options, servers: Mapping[str, Server], rows: Mapping[str, Row]
) -> None:
    metadata = (("authorization", f"Bearer {bench_token('bench')}"),)
    channels = {name: grpc.aio.insecure_channel(s.address) for name, s in servers.items()}
    try:
        stubs = {name: workflow_pb2_grpc.WorkflowServiceStub(c) for name, c in channels.items()}
        for index in range(options.runs + 2):  # two warm-up runs each
            for name in _turns(list(servers), index):
                timing = await served_run(stubs[name], metadata)
                if index >= 2:
                    rows[name].runs.append(timing)
    finally:
        for channel in channels.values():
            await channel.close()


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(options: Options, rows: Mapping[str, Row]) -> int:
    base = rows["untraced"]
    base_qps = float(np.mean(base.qps))
    print(
        f"\n1. ScoreLead at c={CONCURRENCY}, {options.rounds} rounds of {options.seconds:g} s "
        "per server, in turns"
    )
    print(
        "   (this machine's speed drifts by tens of percent within a minute: the ratio is the "
        "median of each round's ratio to the untraced server's measurement of the same round)"
    )
    print(f"{'':<10}{'QPS mean':>10}{'p99 ms':>9}{'ratio':>8}  ratio per round")
    ratios: dict[str, float] = {}
    for name, row in rows.items():
        per_round = [qps / untraced for qps, untraced in zip(row.qps, base.qps, strict=True)]
        ratios[name] = float(np.median(per_round))
        shown = " ".join(f"{r:.2f}" for r in per_round)
        print(
            f"{name:<10}{np.mean(row.qps):>10.0f}{np.mean(row.p99_ms):>9.2f}"
            f"{ratios[name]:>8.3f}  {shown}"
        )
    lost, floor = 1 - ratios["10%"], 1 - ratios["0%"]
    print(f"QPS lost at 10% sampling  {lost:.1%}  (goal <= {GOAL:.0%}: {verdict(lost <= GOAL)})")
    print(
        f"QPS lost with nothing sampled (the floor: the instrumentation alone)  {floor:.1%}; "
        f"10% sampling adds {lost - floor:.1%}; mean QPS untraced {base_qps:.0f}"
    )

    base_step = base.step_ms()
    print(f"\n2. Per-step time of a served content run ({options.runs} runs per server, p50)")
    print(f"{'':<10}{'steps':>7}{'step ms':>9}{'vs untraced':>13}{'added ms':>10}")
    for name, row in rows.items():
        step = row.step_ms()
        steps = float(np.mean([r.steps for r in row.runs]))
        print(
            f"{name:<10}{steps:>7.1f}{step:>9.2f}{step / base_step:>13.3f}{step - base_step:>10.2f}"
        )
    added = rows["10%"].step_ms() / base_step - 1
    print(f"step time added at 10%    {added:.1%}  (goal <= {GOAL:.0%}: {verdict(added <= GOAL)})")
    errors = [f"{name}: {e}" for name, row in rows.items() for e in row.errors]
    for error in errors[:5]:
        print(f"FAILED {error}")
    return 1 if errors else 0


async def run(options: Options) -> int:
    print(f"machine              {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    async with (
        receiver() as port,
        llm_server(0.0, reply=CONTENT_PARTS) as llm_url,
        contextlib.AsyncExitStack() as stack,
    ):
        servers: dict[str, Server] = {}
        for name, environ in tracings(port).items():
            servers[name] = await stack.enter_async_context(
                serving(
                    f"bench-tracing-{name.strip('%')}-",
                    tracing=Tracing.from_environment(environ),
                    llm_config_file=lambda d: write_llm_config(d / "llm.yaml", llm_url),
                    llm_cache_ttl_seconds=0,
                    scoring_batch_workers=0,
                )
            )
            print(f"{name:<20} {servers[name].tracing.describe()}")
        rows = {name: Row() for name in servers}
        await bench_score_lead(options, servers, rows)
        await bench_steps(options, servers, rows)
    return report(options, rows)


def main() -> None:
    raise SystemExit(asyncio.run(run(parse_options())))


if __name__ == "__main__":
    main()
