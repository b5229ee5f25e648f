"""Metrics, logging and traces."""

from ai_orchestration.observability._logging import (
    LIBRARY_LOGGERS,
    JsonFormatter,
    LogContext,
    bind_log_context,
    configure_logging,
    quiet_libraries,
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
    span_context_of,
)

__all__ = [
    "LIBRARY_LOGGERS",
    "NO_TRACER",
    "JsonFormatter",
    "LogContext",
    "Metrics",
    "Tracing",
    "bind_log_context",
    "configure_logging",
    "context_of",
    "current_traceparent",
    "link_current_span",
    "quiet_libraries",
    "requiet_libraries",
    "set_attributes",
    "span_context_of",
]
