"""Which services this server hosts, and how each is served today."""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio
from crm.ai.v1 import insight_pb2, scoring_pb2, workflow_pb2
from google.protobuf.descriptor import ServiceDescriptor

from ai_orchestration.api._unimplemented import unimplemented_service


@dataclass(frozen=True)
class ServiceEntry:
    """A contract service and the issue that implements it (while it answers UNIMPLEMENTED)."""

    descriptor: ServiceDescriptor
    issue: int | None


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry(scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"], issue=3),
    ServiceEntry(workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"], issue=5),
    ServiceEntry(insight_pb2.DESCRIPTOR.services_by_name["InsightService"], issue=None),
)


def register_services(server: grpc.aio.Server) -> list[str]:
    """Add every contract service to ``server``; returns their full names."""
    server.add_generic_rpc_handlers(
        tuple(unimplemented_service(entry.descriptor, entry.issue) for entry in SERVICES)
    )
    return [entry.descriptor.full_name for entry in SERVICES]
