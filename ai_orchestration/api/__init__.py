"""Thin gRPC adapters over the domain cores, and the interceptor every RPC passes through."""

from ai_orchestration.api._insights import InsightServicer
from ai_orchestration.api._interceptor import ServicePipeline
from ai_orchestration.api._registry import SERVICES, ServiceEntry, register_services
from ai_orchestration.api._scoring import ScoringServicer
from ai_orchestration.api._usage import UsageServicer
from ai_orchestration.api._workflows import WorkflowServicer

__all__ = [
    "SERVICES",
    "InsightServicer",
    "ScoringServicer",
    "ServiceEntry",
    "ServicePipeline",
    "UsageServicer",
    "WorkflowServicer",
    "register_services",
]
