"""The grpc.aio server: contract services, health, reflection, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from ai_orchestration import errors
from ai_orchestration.api import (
    InsightServicer,
    ScoringServicer,
    ServicePipeline,
    UsageServicer,
    WorkflowServicer,
    register_services,
)
from ai_orchestration.batch_scoring import BatchScorer
from ai_orchestration.config import Settings, is_loopback
from ai_orchestration.errors import FailedPreconditionError
from ai_orchestration.llm import InjectionPolicy, LlmMetrics, LlmOptions, LlmStack, build_stack
from ai_orchestration.mcp_server import McpEndpoint, build_endpoint
from ai_orchestration.observability import Metrics, Tracing, requiet_libraries
from ai_orchestration.scoring import ScoringEngine
from ai_orchestration.security import Authenticator, TokenVerifier
from ai_orchestration.server._insights import (
    InsightParts,
    budget_alerts,
    insight_stores,
    start_insights,
)
from ai_orchestration.server._reflection import enable_reflection
from ai_orchestration.server._workflows import start_bus, start_workflows
from ai_orchestration.storage import (
    Database,
    IdempotencyRepository,
    TenantSettingsRepository,
    UsageRepository,
)
from ai_orchestration.workflows.engine import CustomerErasure, RunEngine
from ai_orchestration.workflows.graphs import DecisionPolicyStore

_log = logging.getLogger(__name__)


def _server_options(settings: Settings) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.keepalive_time_ms", settings.keepalive_time_seconds * 1000),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_seconds * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept client keepalive pings every 10 s or more without calling them abusive.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_age_ms", settings.max_connection_age_seconds * 1000 or 2**31 - 1),
        ("grpc.max_connection_age_grace_ms", 30_000),
        # Never share a port with another process by accident.
        ("grpc.so_reuseport", 0),
    ]


def build_authenticator(settings: Settings) -> Authenticator:
    """Token verification from settings, or dev mode — which only loopback may use."""
    if settings.auth_configured:
        return Authenticator(verifier=TokenVerifier.from_settings(settings))
    mcp_host = (settings.mcp_host or settings.host) if settings.mcp_port >= 0 else settings.host
    if exposed := [h for h in dict.fromkeys((settings.host, mcp_host)) if not is_loopback(h)]:
        raise FailedPreconditionError(
            f"refusing to serve on {' and '.join(exposed)} without authentication: set "
            "AIO_AUTH_HS256_SECRET, AIO_AUTH_PUBLIC_KEY_FILE or AIO_AUTH_JWKS_FILE, or bind "
            "127.0.0.1 for dev mode",
            reason="AUTH_REQUIRED_OFF_LOOPBACK",
        )
    _log.warning("no authentication configured: dev mode, every caller is tenant 'dev'")
    return Authenticator(verifier=None)


def llm_options(settings: Settings) -> LlmOptions:
    """The gateway's options from the service settings."""
    return LlmOptions(
        config_file=settings.llm_config_file,
        redis_url=settings.redis_url,
        cache_ttl_seconds=settings.llm_cache_ttl_seconds,
        semantic_cache=settings.llm_semantic_cache,
        semantic_threshold=settings.llm_semantic_threshold,
        injection_policy=InjectionPolicy(settings.llm_injection_policy),
        injection_policies={
            tenant: InjectionPolicy(policy)
            for tenant, policy in settings.llm_injection_policies.items()
        },
    )


class Server:
    """One serving process. ``async with Server(...)`` starts it; ``stop()`` is idempotent."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        metrics: Metrics | None = None,
        authenticator: Authenticator | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``authenticator``: built from ``settings`` when not given (see
        :func:`build_authenticator`). ``tracing``: where spans go (none by default; ``serve``
        configures it from the ``OTEL_*`` variables)."""
        self.settings = settings
        self.database = database
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing()
        self.authenticator = authenticator or build_authenticator(settings)
        self.health = HealthServicer()
        self.scoring = ScoringEngine(
            database=database, bootstrap_rows=settings.scoring_bootstrap_rows
        )
        self.batch_scoring = BatchScorer(
            registry=self.scoring.registry,
            scores=self.scoring.scores,
            clock=self.scoring.clock,
            processes=settings.scoring_batch_workers,
            metrics=self.metrics.registry,
            tracer=self.tracing.tracer("ai_orchestration.scoring"),
        )
        self.llm: LlmStack | None = None
        """The LLM gateway and its collaborators, built by :meth:`start`."""
        self.workflows: RunEngine | None = None
        """This replica's workflow engine, started by :meth:`start`."""
        self.insights: InsightParts | None = None
        """This replica's insight core and embedding worker, started by :meth:`start`."""
        self.mcp: McpEndpoint | None = None
        """The MCP endpoint, started by :meth:`start` when ``settings.mcp_port`` is not -1."""
        self._resources = contextlib.AsyncExitStack()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._service_names: list[str] = []
        self._stopped = asyncio.Event()

    def _bind(self, server: grpc.aio.Server) -> int:
        host, port = self.settings.host, self.settings.port
        bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        try:
            return server.add_insecure_port(f"{bind_host}:{port}")
        except RuntimeError as error:
            raise errors.UnavailableError(
                f"cannot listen on {bind_host}:{port}: the address is in use (is another server "
                "running?) or not an address of this machine; stop the other server, or choose "
                "another port with --port or AIO_PORT (0 picks a free one)",
                reason="ADDRESS_IN_USE",
                metadata={"address": f"{bind_host}:{port}"},
            ) from error

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> int:
        """Bind, load the models, register services and mark them SERVING; returns the port.

        The port is bound first: a busy or unavailable address fails the start at once, with
        an error that says what to do, before seconds of loading.

        Raises:
            UnavailableError: the address cannot be listened on (reason ``ADDRESS_IN_USE``).
        """
        pipeline = ServicePipeline(
            authenticator=self.authenticator,
            metrics=self.metrics,
            access_sample_rate=self.settings.access_log_sample_rate,
        )
        server = grpc.aio.server(
            # OpenTelemetry's first: its span covers the whole call, and the pipeline's
            # status (an abort) is recorded on it.
            interceptors=[*self.tracing.server_interceptors(), pipeline],
            options=_server_options(self.settings),
        )
        self.port = self._bind(server)
        # litellm installs its own log handlers when it is imported (with this module), which
        # may be after logging was configured: they go before anything is logged.
        requiet_libraries()
        await self.scoring.start()
        bus = await start_bus(self.settings, self._resources)
        stores = insight_stores(
            self.database, tracer=self.tracing.tracer("ai_orchestration.insights")
        )
        self.llm = await build_stack(
            options=llm_options(self.settings),
            database=self.database,
            metrics=LlmMetrics(self.metrics.registry),
            on_budget_alert=budget_alerts(stores.alerts, bus),
            tracer=self.tracing.tracer("ai_orchestration.llm"),
        )
        policies = DecisionPolicyStore(TenantSettingsRepository(database=self.database))
        self.workflows = await start_workflows(
            settings=self.settings,
            database=self.database,
            llm=self.llm,
            scoring=self.scoring,
            policies=policies,
            bus=bus,
            resources=self._resources,
            histories=stores.interactions,
            retriever=stores.retriever,
            metrics=self.metrics.registry,
            tracing=self.tracing,
        )
        self.insights = await start_insights(
            settings=self.settings,
            stores=stores,
            llm=self.llm,
            bus=bus,
            engine=self.workflows,
            resources=self._resources,
            metrics=self.metrics.registry,
        )
        self._service_names = register_services(
            server,
            scoring=ScoringServicer(
                engine=self.scoring,
                scorer=self.scoring.scorer,
                scores=self.scoring.scores,
                trainer=self.scoring.trainer,
                settings=self.scoring.settings,
                idempotency=IdempotencyRepository(database=self.database),
                batch=self.batch_scoring,
            ),
            usage=UsageServicer(repository=UsageRepository(database=self.database)),
            workflows=WorkflowServicer(
                engine=self.workflows,
                runs=self.workflows.runs,
                definitions=self.workflows.runner.definitions,
                policies=policies,
            ),
            insights=InsightServicer(
                ingestor=self.insights.ingestor,
                settings=self.insights.settings,
                answers=self.insights.answers,
                generator=self.insights.generator,
                insights=self.insights.insights,
                erasure=CustomerErasure(
                    insights=self.insights.insights,
                    runs=self.workflows.runs,
                    engine=self.workflows,
                ),
                watcher=self.insights.watcher,
            ),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection(
            server,
            (*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
        )
        host = self.settings.host
        await server.start()
        self._server = server
        # Launched, not awaited: until a worker is up, chunks are scored in a thread.
        self.batch_scoring.start()
        self._resources.push_async_callback(self.batch_scoring.close)
        for name in ("", *self._service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.settings.metrics_port:
            self.metrics.serve_http(host, self.settings.metrics_port)
        if self.settings.mcp_port >= 0:
            self.mcp = build_endpoint(
                settings=self.settings,
                database=self.database,
                authenticator=self.authenticator,
                scoring=self.scoring,
                workflows=self.workflows,
                interactions=self.insights.interactions,
                embedder=self.insights.embedder,
                answers=self.insights.answers,
                generator=self.insights.generator,
                alerts=self.insights.alerts,
                bus=bus,
            )
            try:
                await self.mcp.start()
            except BaseException:
                await self.stop()  # a refused start leaves nothing serving
                raise
        # What start loaded (modules, models, compiled graphs, about 560k objects) lives as long
        # as the process. Left in the collector's oldest generation, every full collection walked
        # it all: 360 ms with the loop stalled, once or twice per 10,000-lead batch. Frozen, it is
        # never walked again; it is still freed by reference counting.
        gc.freeze()
        self._log_endpoints()
        return self.port

    def _log_endpoints(self) -> None:
        """One start-up line naming every endpoint this process opened, and where traces go."""
        metrics = (
            f"http://{self.settings.host}:{self.settings.metrics_port}/metrics"
            if self.settings.metrics_port
            else "off (AIO_METRICS_PORT)"
        )
        mcp = self.mcp.url if self.mcp is not None else "off (AIO_MCP_PORT)"
        _log.info(
            "serving gRPC on %s (health, reflection, %d services); metrics %s; MCP %s; "
            "traces %s; pid %d",
            self.address,
            len(self._service_names),
            metrics,
            mcp,
            self.tracing.describe(),
            os.getpid(),
            extra={
                "grpc_address": self.address,
                "metrics_url": metrics if self.settings.metrics_port else "",
                "mcp_url": mcp if self.mcp is not None else "",
                "pid": os.getpid(),
            },
        )

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first (so balancers drain us), then let in-flight RPCs finish for
        ``grace`` seconds (default from settings) before cancelling them."""
        if self._server is None or self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        if self.mcp is not None:
            await self.mcp.stop()
        await self._server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        # The engine hands its runs back to the queue, then the bus and checkpointer close.
        await self._resources.aclose()
        if self.llm is not None:
            await self.llm.aclose()
        # The spans of the last calls are exported before the process goes.
        await asyncio.to_thread(self.tracing.shutdown)
        _log.info("stopped")

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(settings: Settings, *, database_url: str) -> None:
    """Migrate, serve until SIGTERM/SIGINT, then shut down gracefully.

    A configuration the server would refuse (dev mode off loopback) is refused before the
    database is opened: a refused start leaves nothing behind.
    """
    authenticator = build_authenticator(settings)
    tracing = Tracing.from_environment(os.environ)
    async with Database.from_url(database_url) as database:
        await database.migrate()
        server = Server(
            settings=settings, database=database, authenticator=authenticator, tracing=tracing
        )
        await server.start()
        # Printed (not only logged) so scripts and tests can find a port-0 server.
        print(f"ai-orchestration listening on {server.address}", flush=True)
        loop = asyncio.get_running_loop()
        stopping: set[asyncio.Task[None]] = set()

        def _on_signal(signum: int) -> None:
            _log.info("received %s: draining", signal.Signals(signum).name)
            stopping.add(loop.create_task(server.stop()))

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, signum)
        await server.wait()
        if stopping:
            await asyncio.gather(*stopping)
