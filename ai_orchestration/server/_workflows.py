"""Assembling the workflow engine of a server: checkpointer, runner, bus and engine."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry

from ai_orchestration._redis import redis_client
from ai_orchestration.config import Settings
from ai_orchestration.llm import LlmStack
from ai_orchestration.observability import Tracing
from ai_orchestration.scoring import ScoringEngine
from ai_orchestration.server._tools import start_tools
from ai_orchestration.storage import Database, DeliveryLedger, RunRepository
from ai_orchestration.workflows.engine import (
    DatabaseQueue,
    EngineSettings,
    LocalBus,
    RedisBus,
    RunEngine,
    RunQueue,
    StreamQueue,
    WorkflowMetrics,
    open_checkpointer,
)
from ai_orchestration.workflows.graphs import (
    CustomerHistory,
    DecisionPolicyStore,
    LangGraphRunner,
    PassageSource,
    WorkflowDeps,
)


def engine_settings(settings: Settings) -> EngineSettings:
    """The engine's limits from the service settings."""
    lease = settings.workflow_lease_seconds
    return EngineSettings(
        concurrency=settings.workflow_concurrency,
        lease_seconds=lease,
        # Renew well inside the lease, and often enough that a cancel lands within a second
        # even when the bus (Redis) is down.
        heartbeat_seconds=min(1.0, lease / 4),
        # Watchers are woken by the bus; without Redis another replica's events are only
        # seen by polling.
        watch_poll_seconds=5.0 if settings.redis_url else 1.0,
        max_attempts=settings.workflow_max_attempts,
        default_timeout_seconds=settings.workflow_default_timeout_seconds,
    )


async def start_bus(settings: Settings, resources: contextlib.AsyncExitStack) -> LocalBus:
    """This replica's bus: wake-ups of run watchers, workers, cancels and alert watchers;
    through Redis across replicas when configured. ``resources`` closes it."""
    if not settings.redis_url:
        return LocalBus()
    # Its own connection without a read timeout: the subscriber blocks on reads by design.
    client = redis_client(settings.redis_url, wait_seconds=2, command_seconds=None)
    resources.push_async_callback(client.aclose)
    redis_bus = RedisBus(client=client)
    await redis_bus.start()
    resources.push_async_callback(redis_bus.aclose)
    return redis_bus


async def start_workflows(
    *,
    settings: Settings,
    database: Database,
    llm: LlmStack,
    scoring: ScoringEngine,
    policies: DecisionPolicyStore,
    bus: LocalBus,
    resources: contextlib.AsyncExitStack,
    histories: CustomerHistory | None = None,
    retriever: PassageSource | None = None,
    metrics: CollectorRegistry | None = None,
    tracing: Tracing | None = None,
) -> RunEngine:
    """Start this replica's engine; ``resources`` closes everything it opened, in reverse."""
    tools, tool_uses = await start_tools(
        settings=settings, resources=resources, metrics=metrics, tracing=tracing
    )
    checkpointer = await resources.enter_async_context(open_checkpointer(database.engine.url))
    runner = LangGraphRunner(
        deps=WorkflowDeps.from_stack(
            llm,
            scoring=scoring,
            delivery=DeliveryLedger(database=database),
            policies=policies,
            histories=histories,
            retriever=retriever,
            tracer=tracing.tracer("ai_orchestration.workflows") if tracing else None,
            tools=tools,
            tool_uses=tool_uses,
        ),
        checkpointer=checkpointer,
    )
    runs = RunRepository(database=database)
    queue: RunQueue = DatabaseQueue(runs)
    if settings.uses_stream_queue:
        # A plain connection: the queue makes no blocking reads (the bus wakes the workers).
        queue_client = redis_client(settings.redis_url, wait_seconds=2, command_seconds=5)
        resources.push_async_callback(queue_client.aclose)
        queue = StreamQueue(
            client=queue_client, runs=runs, lease_seconds=settings.workflow_lease_seconds
        )
    engine = RunEngine(
        runs=runs,
        runner=runner,
        bus=bus,
        settings=engine_settings(settings),
        queue=queue,
        tracer=tracing.tracer("ai_orchestration.workflows") if tracing else None,
    )
    await engine.start()
    resources.push_async_callback(engine.stop)
    if metrics is not None:
        sampler = asyncio.create_task(
            WorkflowMetrics(metrics, engine).sample_forever(), name="workflow-metrics"
        )
        resources.push_async_callback(_cancelled, sampler)
    return engine


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
