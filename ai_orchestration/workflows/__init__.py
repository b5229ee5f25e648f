"""Durable multi-agent workflows (issue #5): run storage, queue, LangGraph graphs, engine."""

from ai_orchestration.workflows._checkpoint import open_checkpointer
from ai_orchestration.workflows._content import ContentPolicy
from ai_orchestration.workflows._context import AnalysisPolicy, WorkflowDeps
from ai_orchestration.workflows._decision import DecisionPolicy
from ai_orchestration.workflows._engine import EngineSettings, RunEngine
from ai_orchestration.workflows._erasure import CustomerErasure
from ai_orchestration.workflows._follow_up_rules import (
    CustomerFollowUpPolicy,
    CustomerHistory,
    PassageSource,
)
from ai_orchestration.workflows._graphs import DEFINITIONS
from ai_orchestration.workflows._metrics import WorkflowMetrics
from ai_orchestration.workflows._notify import LocalBus, RedisBus
from ai_orchestration.workflows._policy import DecisionPolicyStore, checked_policy
from ai_orchestration.workflows._queue import DatabaseQueue, RunQueue
from ai_orchestration.workflows._review import check_answer
from ai_orchestration.workflows._runner import LangGraphRunner
from ai_orchestration.workflows._streams import StreamQueue
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
