"""Which roles may call which RPC: the one table, documented in the README.

A role grants the roles it implies (``scoring.admin`` → ``scoring.writer`` → ``scoring.reader``);
``admin`` grants everything. An RPC missing from the table is denied to everyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

READER, WRITER, ADMIN = "reader", "writer", "admin"

REQUIRED_ROLE: Mapping[str, str] = {
    "/crm.ai.v1.ScoringService/ScoreLead": "scoring.reader",
    "/crm.ai.v1.ScoringService/BatchScoreLeads": "scoring.reader",
    "/crm.ai.v1.ScoringService/ListLeadScores": "scoring.reader",
    "/crm.ai.v1.ScoringService/ListScoringModels": "scoring.reader",
    "/crm.ai.v1.ScoringService/RecordLeadOutcome": "scoring.writer",
    "/crm.ai.v1.ScoringService/TrainScoringModel": "scoring.admin",
    "/crm.ai.v1.ScoringService/GetScoringSettings": "scoring.reader",
    "/crm.ai.v1.ScoringService/UpdateScoringSettings": "scoring.admin",
    "/crm.ai.v1.WorkflowService/ListWorkflows": "workflow.reader",
    "/crm.ai.v1.WorkflowService/GetRun": "workflow.reader",
    "/crm.ai.v1.WorkflowService/ListRuns": "workflow.reader",
    "/crm.ai.v1.WorkflowService/WatchRun": "workflow.reader",
    "/crm.ai.v1.WorkflowService/StartRun": "workflow.operator",
    "/crm.ai.v1.WorkflowService/StreamRun": "workflow.operator",
    "/crm.ai.v1.WorkflowService/CancelRun": "workflow.operator",
    "/crm.ai.v1.WorkflowService/ResumeRun": "workflow.operator",
    "/crm.ai.v1.WorkflowService/GetWorkflowSettings": "workflow.reader",
    "/crm.ai.v1.WorkflowService/UpdateWorkflowSettings": "workflow.admin",
    "/crm.ai.v1.InsightService/AskCustomer": "insight.reader",
    "/crm.ai.v1.InsightService/GenerateInsights": "insight.reader",
    "/crm.ai.v1.InsightService/ListInsights": "insight.reader",
    "/crm.ai.v1.InsightService/WatchAlerts": "insight.reader",
    "/crm.ai.v1.InsightService/IngestInteractions": "insight.writer",
    "/crm.ai.v1.InsightService/GetInsightSettings": "insight.reader",
    "/crm.ai.v1.InsightService/UpdateInsightSettings": "insight.admin",
    "/crm.ai.v1.InsightService/EraseCustomer": "insight.admin",
    "/crm.ai.v1.UsageService/GetUsage": "usage.reader",
    "/crm.ai.v1.UsageService/GetBudget": "usage.reader",
    "/crm.ai.v1.UsageService/SetBudget": "usage.admin",
}

IMPLIES: Mapping[str, frozenset[str]] = {
    "scoring.admin": frozenset({"scoring.writer", "scoring.reader"}),
    "scoring.writer": frozenset({"scoring.reader"}),
    "workflow.admin": frozenset({"workflow.operator", "workflow.reader"}),
    "workflow.operator": frozenset({"workflow.reader"}),
    "insight.admin": frozenset({"insight.writer", "insight.reader"}),
    "insight.writer": frozenset({"insight.reader"}),
    "usage.admin": frozenset({"usage.reader"}),
    "admin": frozenset(REQUIRED_ROLE.values()),
}

PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)
"""Services callable without credentials: probes and schema discovery (grpcurl, buf curl)."""


def effective_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles granted, including implied ones."""
    granted = set(roles)
    for role in list(granted):
        granted |= IMPLIES.get(role, frozenset())
    return frozenset(granted)


def is_public(method: str) -> bool:
    """True for ``/service/Method`` names of PUBLIC_SERVICES."""
    service = method.lstrip("/").split("/", 1)[0]
    return service in PUBLIC_SERVICES
