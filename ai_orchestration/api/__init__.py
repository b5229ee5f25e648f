"""Thin gRPC adapters over the domain cores, and the interceptor every RPC passes through."""

from ai_orchestration.api._interceptor import ServicePipeline
from ai_orchestration.api._registry import SERVICES, ServiceEntry, register_services

__all__ = ["SERVICES", "ServiceEntry", "ServicePipeline", "register_services"]
