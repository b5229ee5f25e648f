"""The run engine: distributed, durable execution of workflow runs.

Runs wait in a queue (the run table, or Redis Streams shared by the replicas); a replica's
workers claim them in the database under a lease renewed by heartbeats, and execute them with a
:class:`~ai_orchestration.workflows.WorkflowRunner` (the graphs' runner, given by the server).
Every event is written to the run's log before the bus announces it; :class:`RunWatcher` hands
events to watchers from the cheapest source that has exactly them. A replica that dies stops
renewing its leases, and another resumes its runs from their last LangGraph checkpoint.
"""

from ai_orchestration.workflows.engine._checkpoint import open_checkpointer
from ai_orchestration.workflows.engine._engine import EngineSettings, RunEngine
from ai_orchestration.workflows.engine._erasure import CustomerErasure
from ai_orchestration.workflows.engine._metrics import WorkflowMetrics
from ai_orchestration.workflows.engine._notify import LocalBus, RedisBus
from ai_orchestration.workflows.engine._queue import DatabaseQueue, RunQueue
from ai_orchestration.workflows.engine._streams import StreamQueue
from ai_orchestration.workflows.engine._watcher import RunWatcher

__all__ = [
    "CustomerErasure",
    "DatabaseQueue",
    "EngineSettings",
    "LocalBus",
    "RedisBus",
    "RunEngine",
    "RunQueue",
    "RunWatcher",
    "StreamQueue",
    "WorkflowMetrics",
    "open_checkpointer",
]
