"""Which services this server hosts, and how each is served today."""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio
from crm.ai.v1 import (
    insight_pb2,
    insight_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from google.protobuf.descriptor import ServiceDescriptor

from ai_orchestration.api._insights import InsightServicer
from ai_orchestration.api._scoring import ScoringServicer
from ai_orchestration.api._unimplemented import unimplemented_service
from ai_orchestration.api._usage import UsageServicer
from ai_orchestration.api._workflows import WorkflowServicer


@dataclass(frozen=True)
class ServiceEntry:
    """A contract service and the issue that implements it (while it answers UNIMPLEMENTED)."""

    descriptor: ServiceDescriptor
    issue: int | None


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry(scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"], issue=None),
    ServiceEntry(workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"], issue=None),
    ServiceEntry(insight_pb2.DESCRIPTOR.services_by_name["InsightService"], issue=None),
    ServiceEntry(usage_pb2.DESCRIPTOR.services_by_name["UsageService"], issue=None),
)


INSIGHT: str = insight_pb2.DESCRIPTOR.services_by_name["InsightService"].full_name
SCORING: str = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
USAGE: str = usage_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name
WORKFLOW: str = workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name


def register_services(
    server: grpc.aio.Server,
    *,
    scoring: ScoringServicer,
    usage: UsageServicer,
    workflows: WorkflowServicer,
    insights: InsightServicer,
) -> list[str]:
    """Add every contract service to ``server``; returns their full names.

    Built services are served by their servicers; the others answer UNIMPLEMENTED naming the
    issue that builds them.
    """
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(scoring, server)
    usage_pb2_grpc.add_UsageServiceServicer_to_server(usage, server)
    workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(workflows, server)
    insight_pb2_grpc.add_InsightServiceServicer_to_server(insights, server)
    server.add_generic_rpc_handlers(
        tuple(
            unimplemented_service(entry.descriptor, entry.issue)
            for entry in SERVICES
            if entry.descriptor.full_name not in (INSIGHT, SCORING, USAGE, WORKFLOW)
        )
    )
    return [entry.descriptor.full_name for entry in SERVICES]
