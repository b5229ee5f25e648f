"""ScoringService over real gRPC on 127.0.0.1, against baselines measured in the same run.

ScoreLead: QPS, p50 and p99 at each concurrency (asyncio tasks sharing one grpc.aio channel)
against an echo servicer that returns a constant LeadScore with 10 factors, served behind the
service's own interceptor pipeline (authentication, validation, metrics, error mapping) as the
issue's "trivial echo servicer on the same server"; a bare echo server (no pipeline) is an
info row. BatchScoreLeads: leads/s of 10,000-lead batches against in-process
``TrainedModel.predict`` (prediction and TreeSHAP contributions, from its per-tree tables) with
the served model; LightGBM's own ``pred_contrib`` is an info row.

Client and servers share one process and one event loop (the service's model work runs in worker
threads, and BatchScoreLeads chunks in the service's worker processes, waited for before the
run), so the ratios compare like with like while the absolute figures include the client's
share of the CPU. ``--quick`` is a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import jwt
import numpy as np
import numpy.typing as npt
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.api import ServicePipeline
from ai_orchestration.config import Settings
from ai_orchestration.scoring import (
    LeadInput,
    compute_scores,
    generate_leads,
    to_matrix,
)
from ai_orchestration.server import Server
from ai_orchestration.storage import Database
from ai_orchestration.wire.scoring import lead_message

SECRET: Final[str] = "bench-secret-with-at-least-32-bytes-of-entropy!"
TENANT: Final[str] = "bench"
SERVICE: Final[str] = "crm.ai.v1.ScoringService"
LEAD_SEED: Final[int] = 7
"""Seed of the scored leads (not the bootstrap seed: the model has not seen them)."""
QPS_GOAL: Final[float] = 0.40
"""ScoreLead QPS as a share of the echo server's, per concurrency (the product issue)."""
BATCH_GOAL: Final[float] = 0.50
"""BatchScoreLeads leads/s as a share of in-process prediction (the product issue)."""
BATCH_ABSOLUTE_GOAL: Final[float] = 20_000.0
"""BatchScoreLeads leads/s (the product issue)."""
ECHO_CHUNK: Final[int] = 1000
"""Scores per message of the echo server's BatchScoreLeads (the service's chunk size)."""
UNARY_TIMEOUT: Final[float] = 30.0
BATCH_TIMEOUT: Final[float] = 120.0
MAX_MESSAGE: Final[int] = 16 * 1024 * 1024
CHANNEL_OPTIONS: Final[list[tuple[str, Any]]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


Serving = tuple[Server, str, str]
"""The real server, and the addresses of the echo behind the service's pipeline and of the
bare echo."""
ScoreCall = Callable[[scoring_pb2.ScoreLeadRequest], Awaitable[scoring_pb2.LeadScore]]


@dataclass(frozen=True, slots=True)
class Options:
    """What to run (see ``--help``)."""

    concurrency: tuple[int, ...]
    seconds: float
    requests: int
    lead_pool: int
    batch_size: int
    batches: int
    bootstrap_rows: int
    batch_workers: int | None


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line; ``--quick`` changes the defaults, flags still win."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    parser.add_argument(
        "--concurrency", help="comma-separated ScoreLead concurrencies (default 1,16,64)"
    )
    parser.add_argument("--seconds", type=float, help="longest run per level and server (3)")
    parser.add_argument("--requests", type=int, help="most requests per level and server (20000)")
    parser.add_argument("--lead-pool", type=int, help="distinct leads ScoreLead cycles over (2000)")
    parser.add_argument("--batch-size", type=int, help="leads per BatchScoreLeads call (10000)")
    parser.add_argument("--batches", type=int, help="BatchScoreLeads calls (2)")
    parser.add_argument(
        "--bootstrap-rows", type=int, help="synthetic leads behind the served model (50000)"
    )
    parser.add_argument(
        "--batch-workers",
        type=int,
        help="BatchScoreLeads worker processes (Settings.scoring_batch_workers' default)",
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick

    def pick(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    concurrency = pick(args.concurrency, "1,16,64", "1,16")
    options = Options(
        concurrency=tuple(int(part) for part in str(concurrency).split(",") if part.strip()),
        seconds=float(pick(args.seconds, 3.0, 0.5)),
        requests=int(pick(args.requests, 20_000, 2_000)),
        lead_pool=int(pick(args.lead_pool, 2_000, 200)),
        batch_size=int(pick(args.batch_size, 10_000, 1_000)),
        batches=int(pick(args.batches, 2, 1)),
        bootstrap_rows=int(pick(args.bootstrap_rows, 50_000, 5_000)),
        batch_workers=args.batch_workers,
    )
    if not options.concurrency or min(options.concurrency) < 1:
        parser.error("--concurrency needs positive integers")
    if not 1 <= options.batch_size <= 10_000:
        parser.error("--batch-size must be 1..10000 (BatchScoreLeadsRequest.leads max_items)")
    if options.seconds <= 0 or min(options.requests, options.lead_pool, options.batches) < 1:
        parser.error("--seconds, --requests, --lead-pool and --batches must be positive")
    if options.batch_workers is not None and not 0 <= options.batch_workers <= 64:
        parser.error("--batch-workers must be 0..64 (Settings.scoring_batch_workers)")
    if not 5_000 <= options.bootstrap_rows <= 1_000_000:
        parser.error("--bootstrap-rows must be 5000..1000000 (Settings.scoring_bootstrap_rows)")
    return options


def echo_response() -> scoring_pb2.LeadScore:
    """A constant LeadScore the size of a fully explained real one (5 + 5 factors)."""

    def factor(
        feature: str, value: str, contribution: float, reason: str
    ) -> scoring_pb2.ScoreFactor:
        points = round(contribution * 12)
        return scoring_pb2.ScoreFactor(
            feature=feature,
            value=value,
            contribution=contribution,
            points=points,
            reason=f"{reason} ({points:+d})",
        )

    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    expires = Timestamp(seconds=now.seconds + 86_400, nanos=now.nanos)
    return scoring_pb2.LeadScore(
        score_id="0f3c2b9e8d7a4c1b9e6f5a4d3c2b1a09",
        lead_id="lead-000123",
        score=82,
        grade=scoring_pb2.GRADE_A,
        probability=0.8213,
        confidence=0.93,
        positive_factors=[
            factor("demo_requested", "yes", 1.873, "Requested a demo"),
            factor("seniority_level", "c_level", 0.912, "Senior contact (c_level)"),
            factor("pricing_page_visits", "3", 0.644, "Visited the pricing page 3 times"),
            factor("page_visits", "12", 0.201, "12 page visits in the last 30 days"),
            factor("source", "referral", 0.187, "Came in through a referral"),
        ],
        negative_factors=[
            factor("personal_email", "gmail.com", -0.512, "Personal e-mail address"),
            factor("days_since_last_touch", "41", -0.233, "Last touched 41 days ago"),
            factor("industry", "government", -0.141, "Industry: government"),
            factor("log_employee_count", "12", -0.088, "Small company (12 employees)"),
            factor("source", "outbound", -0.052, "Came in through outbound"),
        ],
        model_version="global-bootstrap-50000-20261123",
        experiment_arm="control",
        score_time=now,
        expire_time=expires,
        input_digest="9b2f4c6d8e0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c",
    )


async def start_echo_server(
    response: scoring_pb2.LeadScore, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> tuple[grpc.aio.Server, str]:
    """An echo server on 127.0.0.1:<free port> that deserialises the request and answers
    ScoreLead with ``response``, BatchScoreLeads with chunks of ``response``, one per lead,
    behind ``interceptors``."""

    async def score_lead(
        request: scoring_pb2.ScoreLeadRequest,
        context: grpc.aio.ServicerContext[scoring_pb2.ScoreLeadRequest, scoring_pb2.LeadScore],
    ) -> scoring_pb2.LeadScore:
        return response

    async def batch_score_leads(
        request: scoring_pb2.BatchScoreLeadsRequest,
        context: grpc.aio.ServicerContext[
            scoring_pb2.BatchScoreLeadsRequest, scoring_pb2.BatchScoreLeadsResponse
        ],
    ) -> AsyncIterator[scoring_pb2.BatchScoreLeadsResponse]:
        # Chunks of ECHO_CHUNK constant scores, as the service sends them.
        for first in range(0, len(request.leads), ECHO_CHUNK):
            count = min(ECHO_CHUNK, len(request.leads) - first)
            yield scoring_pb2.BatchScoreLeadsResponse(scores=[response] * count, first_index=first)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ScoreLead": grpc.unary_unary_rpc_method_handler(
                score_lead,
                request_deserializer=scoring_pb2.ScoreLeadRequest.FromString,
                response_serializer=scoring_pb2.LeadScore.SerializeToString,
            ),
            "BatchScoreLeads": grpc.unary_stream_rpc_method_handler(
                batch_score_leads,
                request_deserializer=scoring_pb2.BatchScoreLeadsRequest.FromString,
                response_serializer=scoring_pb2.BatchScoreLeadsResponse.SerializeToString,
            ),
        },
    )
    server = grpc.aio.server(interceptors=interceptors, options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def describe(error: grpc.aio.AioRpcError) -> str:
    """Status code, message, reason, field violations and correlation id of a failed call."""
    parsed = ServiceError.from_rpc_error(error)
    parts = [f"{parsed.code.name}: {parsed.message}"]
    if parsed.reason:
        parts.append(f"reason={parsed.reason}")
    parts.extend(f"{v.field}: {v.description}" for v in parsed.field_violations)
    if parsed.correlation_id:
        parts.append(f"correlation id {parsed.correlation_id}")
    return "; ".join(parts)


@dataclass(slots=True)
class LevelResult:
    """One server at one concurrency."""

    calls: int
    elapsed: float
    latencies: npt.NDArray[np.float64]
    errors: list[str] = field(default_factory=list)

    @property
    def qps(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.calls else float("nan")


async def run_level(
    call: ScoreCall,
    requests: Sequence[scoring_pb2.ScoreLeadRequest],
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> LevelResult:
    """``concurrency`` tasks call until ``seconds`` pass or ``max_requests`` were issued.

    A task stops at its first failed call (the failure is kept, not counted as a call)."""
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            request = requests[issued % len(requests)]
            issued += 1
            sent = time.perf_counter()
            try:
                await call(request)
            except grpc.aio.AioRpcError as error:
                errors.append(describe(error))
                return
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return LevelResult(len(latencies), elapsed, np.asarray(latencies, dtype=np.float64), errors)


async def measure(
    call: ScoreCall,
    requests: Sequence[scoring_pb2.ScoreLeadRequest],
    concurrency: int,
    options: Options,
) -> LevelResult:
    """A short warm-up at the level's concurrency, then the measured run."""
    await run_level(
        call,
        requests,
        concurrency=concurrency,
        seconds=min(0.5, options.seconds / 4),
        max_requests=max(50, 4 * concurrency),
    )
    return await run_level(
        call,
        requests,
        concurrency=concurrency,
        seconds=options.seconds,
        max_requests=options.requests,
    )


def level_row(concurrency: int, name: str, result: LevelResult) -> str:
    """One row of the ScoreLead table."""
    return (
        f"{concurrency:>5}  {name:<10}{result.calls:>8}{result.qps:>10.1f}"
        f"{result.percentile_ms(50):>10.2f}{result.percentile_ms(99):>10.2f}"
        f"{len(result.errors):>8}"
    )


@dataclass(frozen=True, slots=True)
class BatchRun:
    """One BatchScoreLeads call."""

    received: int
    elapsed: float
    first: float
    """Seconds until the first score arrived."""
    error: str = ""


async def batch_once(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub,
    request: scoring_pb2.BatchScoreLeadsRequest,
    metadata: tuple[tuple[str, str], ...],
) -> BatchRun:
    """Streams one batch to the end; the time runs from the call to the last score."""
    received, first = 0, float("nan")
    start = time.perf_counter()
    try:
        async for chunk in stub.BatchScoreLeads(request, metadata=metadata, timeout=BATCH_TIMEOUT):
            if received == 0:
                first = time.perf_counter() - start
            received += len(chunk.scores)
    except grpc.aio.AioRpcError as error:
        return BatchRun(received, time.perf_counter() - start, first, describe(error))
    return BatchRun(received, time.perf_counter() - start, first)


def best_seconds(work: Callable[[], object], repetitions: int) -> float:
    """Fastest of ``repetitions`` runs of ``work``."""
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def goal(value: float, target: float) -> str:
    """Whether ``value`` reaches the goal ``target``, for the printout."""
    return "met" if value >= target else "NOT met"


@dataclass(frozen=True, slots=True)
class Stubs:
    """The service, the echo behind its pipeline (the baseline) and the bare echo (info)."""

    service: scoring_pb2_grpc.ScoringServiceAsyncStub
    echo: scoring_pb2_grpc.ScoringServiceAsyncStub
    bare: scoring_pb2_grpc.ScoringServiceAsyncStub


async def bench_score_lead(
    options: Options,
    stubs: Stubs,
    requests: Sequence[scoring_pb2.ScoreLeadRequest],
    metadata: tuple[tuple[str, str], ...],
) -> list[str]:
    """Prints the ScoreLead table; returns the failures."""

    def caller(stub: scoring_pb2_grpc.ScoringServiceAsyncStub) -> ScoreCall:
        def call(request: scoring_pb2.ScoreLeadRequest) -> Awaitable[scoring_pb2.LeadScore]:
            return stub.ScoreLead(request, metadata=metadata, timeout=UNARY_TIMEOUT)

        return call

    print(
        f"\nScoreLead, unary ({len(requests)} distinct leads; per level and server "
        f"<= {options.seconds:g} s or {options.requests} calls after a warm-up)"
    )
    header = ("calls", "QPS", "p50 ms", "p99 ms")
    print(
        f"{'conc':>5}  {'server':<10}{header[0]:>8}{''.join(f'{h:>10}' for h in header[1:])}"
        f"{'errors':>8}"
    )
    failures: list[str] = []
    for concurrency in options.concurrency:
        baseline = await measure(caller(stubs.echo), requests, concurrency, options)
        print(level_row(concurrency, "echo", baseline))
        scored = await measure(caller(stubs.service), requests, concurrency, options)
        print(level_row(concurrency, "ScoreLead", scored))
        bare = await measure(caller(stubs.bare), requests, concurrency, options)
        print(level_row(concurrency, "bare echo", bare))
        ratio = scored.qps / baseline.qps if baseline.qps else float("nan")
        print(
            f"{'':>7}ScoreLead / echo QPS  {ratio:.2f}  "
            f"(goal >= {QPS_GOAL:.2f}: {goal(ratio, QPS_GOAL)})"
        )
        bare_ratio = scored.qps / bare.qps if bare.qps else float("nan")
        print(f"{'':>7}ScoreLead / bare echo QPS  {bare_ratio:.2f}  (info: no interceptors)")
        failures += [f"echo c={concurrency}: {e}" for e in baseline.errors]
        failures += [f"ScoreLead c={concurrency}: {e}" for e in scored.errors]
        failures += [f"bare echo c={concurrency}: {e}" for e in bare.errors]
    return failures


def batch_row(name: str, seconds: float, leads: int, note: str) -> str:
    """One row of the BatchScoreLeads table."""
    rate = leads / seconds if seconds > 0 else float("nan")
    return f"{name:<16}{seconds:>9.3f}{rate:>12.0f}  {note}"


async def bench_batch(
    options: Options,
    server: Server,
    service: scoring_pb2_grpc.ScoringServiceAsyncStub,
    echo: scoring_pb2_grpc.ScoringServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
) -> list[str]:
    """Prints the BatchScoreLeads table; returns the failures."""
    size = options.batch_size
    data = generate_leads(size, seed=LEAD_SEED + 1)
    leads = [lead_message(f"batch-{i}", lead) for i, lead in enumerate(data.leads)]
    request = scoring_pb2.BatchScoreLeadsRequest(leads=leads)
    print(
        f"\nBatchScoreLeads, server stream ({size} leads per call, "
        f"{request.ByteSize() / 1e6:.2f} MB request, best of {options.batches})"
    )
    print(f"{'':<16}{'seconds':>9}{'leads/s':>12}")
    failures: list[str] = []
    best = float("inf")
    for index in range(options.batches):
        run = await batch_once(service, request, metadata)
        if run.error or run.received != size:
            why = run.error or f"stream ended after {run.received} of {size} scores"
            failures.append(f"BatchScoreLeads call {index + 1}: {why}")
            print(f"call {index + 1:<11}FAILED after {run.elapsed:.3f} s: {why}")
            continue
        best = min(best, run.elapsed)
        note = f"first score after {run.first * 1000:.0f} ms"
        print(batch_row(f"call {index + 1}", run.elapsed, size, note))

    # Baseline: the served model itself, in this thread while the servers are idle.
    deployment = await server.scoring.registry.deployment(TENANT)
    model = deployment.champion.model
    x = to_matrix(data.leads)
    repetitions = max(3, options.batches)
    predict = best_seconds(lambda: model.predict(x), repetitions)
    print(
        batch_row(
            "predict",
            predict,
            size,
            f"baseline: in-process TrainedModel.predict, served model, best of {repetitions}",
        )
    )
    # TrainedModel.predict looks contributions up in per-tree tables; LightGBM's own TreeSHAP
    # (what predict cost before them) is the info row for reading the ratio.
    booster = best_seconds(lambda: model.booster.predict(x, pred_contrib=True), repetitions)
    note = "info: LightGBM's own predict(pred_contrib=True), all cores"
    print(batch_row("LightGBM contrib", booster, size, note))
    # For reading the gap: gRPC streaming alone, and the scoring core without gRPC or storage.
    streamed = float("inf")
    for _ in range(options.batches):
        run = await batch_once(echo, request, metadata)
        if run.error or run.received != size:
            failures.append(f"stream echo: {run.error or f'{run.received} of {size} messages'}")
            break
        streamed = min(streamed, run.elapsed)
    note = f"info: echo server streaming chunks of {ECHO_CHUNK} constant LeadScores"
    print(batch_row("stream echo", streamed, size, note))
    inputs = [LeadInput(f"batch-{i}", lead) for i, lead in enumerate(data.leads)]
    core = best_seconds(lambda: compute_scores(deployment, inputs, datetime.now(UTC)), 1)
    note = "info: in-process compute_scores (features, predict, explain, records)"
    print(batch_row("compute_scores", core, size, note))
    if best < float("inf"):
        rate, ratio = size / best, predict / best
        print(
            f"BatchScoreLeads / predict      {ratio:.3f}  (best call; goal >= {BATCH_GOAL:.2f}: "
            f"{goal(ratio, BATCH_GOAL)})"
        )
        print(f"BatchScoreLeads / LightGBM contrib  {booster / best:.3f}  (info)")
        if streamed < float("inf"):
            print(f"BatchScoreLeads / stream echo  {streamed / best:.3f}  (info)")
        print(
            f"BatchScoreLeads {rate:.0f} leads/s  (best call; goal >= "
            f"{BATCH_ABSOLUTE_GOAL:.0f}: {goal(rate, BATCH_ABSOLUTE_GOAL)})"
        )
    return failures


def token() -> str:
    """An HS256 token of the benchmark tenant, valid for the run."""
    claims = {
        "sub": "bench",
        "tenant_id": TENANT,
        "roles": ["admin"],
        "exp": int(time.time() + 3600),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def serving(options: Options, response: scoring_pb2.LeadScore) -> AsyncIterator[Serving]:
    """The real server (SQLite in a temporary directory) and the echo server, both on port 0."""
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as data_dir:
        workers: dict[str, Any] = (
            {}
            if options.batch_workers is None
            else {"scoring_batch_workers": options.batch_workers}
        )
        settings = Settings(
            host="127.0.0.1",
            port=0,
            data_dir=Path(data_dir),
            auth_hs256_secret=SECRET,
            shutdown_grace_seconds=1,
            scoring_bootstrap_rows=options.bootstrap_rows,
            **workers,
        )
        async with Database.from_url(settings.resolved_database_url()) as database:
            await database.migrate()
            async with Server(settings=settings, database=database) as server:
                if server.batch_scoring.pool is not None:  # measure the workers, not the thread
                    await server.batch_scoring.pool.wait_ready()
                pipeline = ServicePipeline(
                    authenticator=server.authenticator, metrics=server.metrics
                )
                echo_server, echo_address = await start_echo_server(response, [pipeline])
                bare_server, bare_address = await start_echo_server(response)
                try:
                    yield server, echo_address, bare_address
                finally:
                    await echo_server.stop(None)
                    await bare_server.stop(None)


async def run(options: Options) -> int:
    """Runs both benchmarks; returns the exit status (1 if any call failed)."""
    started = time.perf_counter()
    print(f"machine              {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    pool = generate_leads(options.lead_pool, seed=LEAD_SEED)
    requests = [
        scoring_pb2.ScoreLeadRequest(lead=lead_message(f"lead-{i}", lead))
        for i, lead in enumerate(pool.leads)
    ]
    metadata = (("authorization", f"Bearer {token()}"),)
    response = echo_response()
    failures: list[str] = []
    starting = time.perf_counter()
    async with serving(options, response) as (server, echo_address, bare_address):
        print(f"server start         {time.perf_counter() - starting:.1f} s (migrate, train model)")
        print(f"served model         {server.scoring.registry.global_model.version}")
        print(f"batch workers        {server.settings.scoring_batch_workers} processes")
        async with (
            grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as service_channel,
            grpc.aio.insecure_channel(echo_address, options=CHANNEL_OPTIONS) as echo_channel,
            grpc.aio.insecure_channel(bare_address, options=CHANNEL_OPTIONS) as bare_channel,
        ):
            service = scoring_pb2_grpc.ScoringServiceStub(service_channel)
            echo = scoring_pb2_grpc.ScoringServiceStub(echo_channel)
            bare = scoring_pb2_grpc.ScoringServiceStub(bare_channel)
            try:
                sample = await service.ScoreLead(
                    requests[0], metadata=metadata, timeout=UNARY_TIMEOUT
                )
            except grpc.aio.AioRpcError as error:
                print(f"FAILED ScoreLead: {describe(error)}")
                return 1
            print(
                f"response size        ScoreLead {sample.ByteSize()} B "
                f"({len(sample.positive_factors)}+{len(sample.negative_factors)} factors), "
                f"echo {response.ByteSize()} B (5+5 factors)"
            )
            stubs = Stubs(service=service, echo=echo, bare=bare)
            failures += await bench_score_lead(options, stubs, requests, metadata)
            failures += await bench_batch(options, server, service, bare, metadata)
    print(f"\ntotal                {time.perf_counter() - started:.1f} s")
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


def main() -> None:
    """Runs the benchmark once and prints the figures."""
    raise SystemExit(asyncio.run(run(parse_options())))


if __name__ == "__main__":
    main()
