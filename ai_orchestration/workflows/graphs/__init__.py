"""The workflows: LangGraph graphs of agents, and the runner that executes them for the engine.

``lead_qualification``, ``content_generation`` and ``customer_follow_up`` (:data:`DEFINITIONS`).
Decisions come from rules and models (:mod:`._decision`, :mod:`._follow_up_rules`, the tenant's
:class:`DecisionPolicy`); text from the LLM gateway is drafted in parts, checked, and never
delivered when a check fails (:mod:`._writing`, :mod:`._checks`, :mod:`._review`). Each step
degrades to a deterministic fallback. Nothing here knows about leases, queues or replicas.
"""

from ai_orchestration.workflows.graphs._content import ContentPolicy
from ai_orchestration.workflows.graphs._context import AnalysisPolicy, WorkflowDeps
from ai_orchestration.workflows.graphs._decision import DecisionPolicy
from ai_orchestration.workflows.graphs._follow_up_rules import (
    CustomerFollowUpPolicy,
    CustomerHistory,
    PassageSource,
)
from ai_orchestration.workflows.graphs._graphs import DEFINITIONS
from ai_orchestration.workflows.graphs._policy import DecisionPolicyStore, checked_policy
from ai_orchestration.workflows.graphs._review import check_answer
from ai_orchestration.workflows.graphs._runner import LangGraphRunner
from ai_orchestration.workflows.graphs._tool_uses import (
    ExternalTools,
    ExternalToolUse,
    load_tool_uses,
    parse_tool_uses,
)

__all__ = [
    "DEFINITIONS",
    "AnalysisPolicy",
    "ContentPolicy",
    "CustomerFollowUpPolicy",
    "CustomerHistory",
    "DecisionPolicy",
    "DecisionPolicyStore",
    "ExternalToolUse",
    "ExternalTools",
    "LangGraphRunner",
    "PassageSource",
    "WorkflowDeps",
    "check_answer",
    "checked_policy",
    "load_tool_uses",
    "parse_tool_uses",
]
