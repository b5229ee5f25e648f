"""Prometheus metrics of the workflow engine, in the server's registry."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

from ai_orchestration.workflows.engine._engine import RunEngine

__all__ = ["WorkflowMetrics"]

_log = logging.getLogger(__name__)

SAMPLE_SECONDS: Final[float] = 5.0
"""How often the queue depth is read (a query, or one Redis script)."""


class WorkflowMetrics:
    """``aio_workflow_runs_executing`` (this replica) and ``aio_workflow_queue_depth`` (all
    replicas: the runs waiting for a worker, what an autoscaler scales on)."""

    def __init__(self, registry: CollectorRegistry, engine: RunEngine) -> None:
        self._engine = engine
        self.executing = Gauge(
            "aio_workflow_runs_executing",
            "Workflow runs executing on this replica.",
            registry=registry,
        )
        self.executing.set_function(lambda: engine.executing)
        self.queue_depth = Gauge(
            "aio_workflow_queue_depth",
            f"Workflow runs waiting for a replica, all tenants (read every {SAMPLE_SECONDS:g} s).",
            registry=registry,
        )

    async def sample(self) -> None:
        """Read the queue depth once."""
        self.queue_depth.set(await self._engine.queue.depth())

    async def sample_forever(self, seconds: float = SAMPLE_SECONDS) -> None:
        """Read the queue depth every ``seconds`` until cancelled."""
        while True:
            try:
                await self.sample()
            except Exception:
                _log.exception("reading the workflow queue depth failed")
            await asyncio.sleep(seconds)
