"""Metrics and logging."""

from ai_orchestration.observability._logging import configure_logging
from ai_orchestration.observability._metrics import Metrics

__all__ = ["Metrics", "configure_logging"]
