"""The endpoint of one server, from the server's settings and the cores it already built."""

from __future__ import annotations

from ai_orchestration.config import Settings, is_loopback
from ai_orchestration.errors import FailedPreconditionError
from ai_orchestration.insight_writing import CustomerAnswers, InsightGenerator, Retriever
from ai_orchestration.insights import PassageEmbedder
from ai_orchestration.mcp_server._crm import CrmTools
from ai_orchestration.mcp_server._customers import AlertBus, CustomerTools
from ai_orchestration.mcp_server._endpoint import McpEndpoint
from ai_orchestration.scoring import ScoringEngine
from ai_orchestration.security import Authenticator
from ai_orchestration.storage import (
    AlertRepository,
    Database,
    DeliveryLedger,
    IdempotencyRepository,
    InteractionRepository,
)
from ai_orchestration.workflows.engine import RunEngine


def build_endpoint(
    *,
    settings: Settings,
    database: Database,
    authenticator: Authenticator,
    scoring: ScoringEngine,
    workflows: RunEngine,
    interactions: InteractionRepository,
    embedder: PassageEmbedder,
    answers: CustomerAnswers,
    generator: InsightGenerator,
    alerts: AlertRepository,
    bus: AlertBus,
) -> McpEndpoint:
    """The MCP endpoint on ``settings.mcp_host`` (default: ``host``) and ``mcp_port``, with
    every tool over the same objects the gRPC servicers use.

    Raises:
        FailedPreconditionError: dev mode (no authentication) on a non-loopback address.
    """
    host = settings.mcp_host or settings.host
    if authenticator.dev_mode and not is_loopback(host):
        raise FailedPreconditionError(
            f"refusing to serve MCP on {host} without authentication: configure a token key "
            "or bind 127.0.0.1 for dev mode",
            reason="AUTH_REQUIRED_OFF_LOOPBACK",
        )
    crm = CrmTools(
        authenticator=authenticator,
        scoring=scoring,
        scorer=scoring.scorer,
        idempotency=IdempotencyRepository(database=database),
        workflows=workflows,
    )
    customers = CustomerTools(
        authenticator=authenticator,
        interactions=interactions,
        retriever=Retriever(index=interactions, embedder=embedder),
        answers=answers,
        generator=generator,
        ledger=DeliveryLedger(database=database),
        alerts=alerts,
        bus=bus,
    )
    return McpEndpoint(
        authenticator=authenticator,
        tools=[*crm.tools(), *customers.tools()],
        host=host,
        port=settings.mcp_port,
        grace_seconds=settings.shutdown_grace_seconds,
    )
