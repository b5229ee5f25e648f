"""Durable multi-agent workflows, in two rooms over one vocabulary.

- :mod:`ai_orchestration.workflows.engine`: distributed runs — the run engine (start, watch,
  cancel, resume), the queue (the run table, or Redis Streams), leases and heartbeats, the
  event bus, watching, LangGraph checkpoints, erasure.
- :mod:`ai_orchestration.workflows.graphs`: the workflows themselves — LangGraph graphs, their
  agents, drafting and its checks, decision rules and tenant policies, and the runner that
  executes a run's graph for the engine.

The vocabulary both use: a run's records (from :mod:`ai_orchestration.records`, which storage
stores), what a runner returns, and the seams between the engine and the graphs
(:class:`WorkflowRunner`, :class:`EventSink`, :class:`DeliverySink`), in :mod:`._types`. The
engine never imports the graphs and the graphs never import the engine: the server joins them.
Someone writing a workflow works in ``graphs/`` and never opens lease code.
"""

from ai_orchestration.workflows._types import (
    TERMINAL_STATES,
    Completed,
    DeliveryRequest,
    DeliverySink,
    EventKind,
    EventSink,
    Interrupted,
    JsonDoc,
    Outcome,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    RunUsage,
    WorkflowDefinition,
    WorkflowRunner,
)
from ai_orchestration.workflows.engine import (
    CustomerErasure,
    DatabaseQueue,
    EngineSettings,
    LocalBus,
    RedisBus,
    RunEngine,
    RunQueue,
    StreamQueue,
    WorkflowMetrics,
    open_checkpointer,
)
from ai_orchestration.workflows.graphs import (
    DEFINITIONS,
    AnalysisPolicy,
    ContentPolicy,
    CustomerFollowUpPolicy,
    CustomerHistory,
    DecisionPolicy,
    DecisionPolicyStore,
    LangGraphRunner,
    PassageSource,
    WorkflowDeps,
    check_answer,
    checked_policy,
)

__all__ = [
    "DEFINITIONS",
    "TERMINAL_STATES",
    "AnalysisPolicy",
    "Completed",
    "ContentPolicy",
    "CustomerErasure",
    "CustomerFollowUpPolicy",
    "CustomerHistory",
    "DatabaseQueue",
    "DecisionPolicy",
    "DecisionPolicyStore",
    "DeliveryRequest",
    "DeliverySink",
    "EngineSettings",
    "EventKind",
    "EventSink",
    "Interrupted",
    "JsonDoc",
    "LangGraphRunner",
    "LocalBus",
    "Outcome",
    "PassageSource",
    "RedisBus",
    "RunEngine",
    "RunError",
    "RunEvent",
    "RunQueue",
    "RunRecord",
    "RunState",
    "RunUsage",
    "StreamQueue",
    "WorkflowDefinition",
    "WorkflowDeps",
    "WorkflowMetrics",
    "WorkflowRunner",
    "check_answer",
    "checked_policy",
    "open_checkpointer",
]
