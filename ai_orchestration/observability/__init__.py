"""Metrics, logging and traces: the server's registry, log set-up and context, and its tracer
provider (configured by the ``OTEL_*`` variables) with the helpers that carry a trace across
the run queue."""

from ai_orchestration.observability._logging import (
    LogContext,
    bind_log_context,
    configure_logging,
    requiet_libraries,
)
from ai_orchestration.observability._metrics import Metrics
from ai_orchestration.observability._tracing import (
    NO_TRACER,
    Tracing,
    context_of,
    current_traceparent,
    link_current_span,
    set_attributes,
)

__all__ = [
    "NO_TRACER",
    "LogContext",
    "Metrics",
    "Tracing",
    "bind_log_context",
    "configure_logging",
    "context_of",
    "current_traceparent",
    "link_current_span",
    "requiet_libraries",
    "set_attributes",
]
