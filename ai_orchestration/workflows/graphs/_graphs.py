"""The workflow graphs, their shared state, their outputs and their definitions.

``lead_qualification``::

    START -> lead_analysis -> decision -+-> content -+-> deliver -> END
                                        |            +-> human_review -+-> deliver -> END
                                        |                              +-> END (rejected, or
                                        +-> human_review (DISQUALIFIED      nothing to deliver)
                                        |   and a human is needed)
                                        +-> END (DISQUALIFIED, no human needed)

``customer_follow_up``: see :mod:`._follow_up`.

``content_generation``::

    START -> content -+-> deliver -> END
                      +-> approval (require_approval) -+-> deliver -> END
                                                       +-> END (rejected)

In both, a draft that fails a check goes to the human (``human_review`` / ``approval``), never
straight to ``deliver`` (see :mod:`._review`).

State values are JSON (proto3 JSON documents), so every checkpointer serialises them as is.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from ai_orchestration.workflows._types import JsonDoc, WorkflowDefinition
from ai_orchestration.workflows.graphs._agents import decision_step, lead_analysis_step
from ai_orchestration.workflows.graphs._context import RunContext, WorkflowDeps
from ai_orchestration.workflows.graphs._decision import DISQUALIFIED
from ai_orchestration.workflows.graphs._follow_up import customer_follow_up_graph, follow_up_output
from ai_orchestration.workflows.graphs._review import (
    add_review_and_delivery,
    after_human,
    approval_step,
    deliver_step,
    draft_fails,
)
from ai_orchestration.workflows.graphs._steps import json_doc, step
from ai_orchestration.workflows.graphs._writing import content_generation_step, lead_content_step

__all__ = [
    "CONTENT_GENERATION",
    "CUSTOMER_FOLLOW_UP",
    "DEFINITIONS",
    "LEAD_QUALIFICATION",
    "ContentGenerationState",
    "LeadQualificationState",
    "build_graphs",
    "output_of",
    "served",
]

LEAD_QUALIFICATION: Final = "lead_qualification"
CUSTOMER_FOLLOW_UP: Final = "customer_follow_up"
CONTENT_GENERATION: Final = "content_generation"
_VERSION: Final = "1"

DEFINITIONS: Final[Mapping[str, WorkflowDefinition]] = {
    LEAD_QUALIFICATION: WorkflowDefinition(
        name=LEAD_QUALIFICATION,
        description=(
            "Scores a lead, analyses it with context from the CRM's store, decides "
            "qualification and next best action by explicit rules (a human decides when "
            "confidence is low, the deal is large or the notes look like a prompt injection), "
            "drafts validated outreach and delivers it."
        ),
        version=_VERSION,
        input_type="crm.ai.v1.LeadQualificationInput",
        output_type="crm.ai.v1.LeadQualificationOutput",
        interruptible=True,
    ),
    CUSTOMER_FOLLOW_UP: WorkflowDefinition(
        name=CUSTOMER_FOLLOW_UP,
        description=(
            "Reads a customer's interactions, decides their risks, opportunities and next best "
            "action by explicit rules, drafts a follow-up grounded in the passages relevant to "
            "the goal (with citations), asks a human first when the rules say so (always for a "
            "churn risk, an escalation or a legal threat) and delivers it."
        ),
        version=_VERSION,
        input_type="crm.ai.v1.CustomerFollowUpInput",
        output_type="crm.ai.v1.CustomerFollowUpOutput",
        interruptible=True,
    ),
    CONTENT_GENERATION: WorkflowDefinition(
        name=CONTENT_GENERATION,
        description=(
            "Drafts a message for a recipient, purpose, channel and tone, validates and revises "
            "it (at most twice), optionally asks a human to approve it, and delivers it."
        ),
        version=_VERSION,
        input_type="crm.ai.v1.ContentGenerationInput",
        output_type="crm.ai.v1.ContentGenerationOutput",
        interruptible=True,
    ),
}
"""The workflows this package runs (``customer_follow_up`` only where the deps hold the insight
core, see :func:`served`)."""


def served(deps: WorkflowDeps) -> dict[str, WorkflowDefinition]:
    """The definitions ``deps`` can run: ``customer_follow_up`` needs a history source and a
    retriever (a server without them answers StartRun with WORKFLOW_UNAVAILABLE)."""
    return {
        name: definition
        for name, definition in DEFINITIONS.items()
        if name != CUSTOMER_FOLLOW_UP or deps.serves_follow_up
    }


class LeadQualificationState(TypedDict, total=False):
    """Shared state of the lead qualification agents."""

    input: JsonDoc
    """The ``LeadQualificationInput`` document."""
    score: JsonDoc
    """The ``LeadScore`` document; empty when scoring failed."""
    facts: JsonDoc
    """Tool results: ``history``, ``outcome``, ``company``, grade ``cutoffs``."""
    guard: JsonDoc
    """Injection verdict on the notes: ``flagged``, ``score``, ``reasons``."""
    analysis: str
    """Strengths and risks, from the LLM or the deterministic fallback."""
    decision: JsonDoc
    """``qualification``, ``next_best_action``, ``rationale``, interrupt ``reasons``."""
    draft: JsonDoc
    """The ``OutreachDraft`` document."""
    recipient: JsonDoc
    """The ``Recipient`` the draft is for."""
    tone: str
    """The tone the draft was written in (the tenant's brand voice)."""
    review: JsonDoc
    """The human's answer: ``decision`` and ``comment``."""
    delivered: bool
    """Whether the draft was handed to the delivery sink."""
    degraded_steps: Annotated[list[str], operator.add]
    """Steps that used their deterministic fallback."""


class ContentGenerationState(TypedDict, total=False):
    """State of the content generation workflow."""

    input: JsonDoc
    """The ``ContentGenerationInput`` document."""
    tone: str
    """The tone the draft was written in."""
    draft: JsonDoc
    """The ``OutreachDraft`` document."""
    recipient: JsonDoc
    """The ``Recipient``."""
    review: JsonDoc
    """The human's answer when approval was required."""
    delivered: bool
    """Whether the draft was handed to the delivery sink."""
    degraded_steps: Annotated[list[str], operator.add]
    """Steps that used their deterministic fallback."""


Graph = CompiledStateGraph[Any, RunContext, Any, Any]


def _after_decision(state: Mapping[str, Any]) -> str:
    decision = json_doc(state.get("decision"))
    if decision.get("qualification") == DISQUALIFIED:
        return "human_review" if decision.get("reasons") else END
    return "content"


def _lead_qualification() -> StateGraph[Any, RunContext, Any, Any]:
    graph: StateGraph[Any, RunContext, Any, Any] = StateGraph(
        LeadQualificationState, context_schema=RunContext
    )
    graph.add_node(
        "lead_analysis", step("lead_analysis", "lead_analysis_agent", lead_analysis_step)
    )
    graph.add_node("decision", step("decision", "decision_agent", decision_step))
    graph.add_node("content", step("content", "content_agent", lead_content_step))
    graph.add_edge(START, "lead_analysis")
    graph.add_edge("lead_analysis", "decision")
    graph.add_conditional_edges("decision", _after_decision, ["content", "human_review", END])
    add_review_and_delivery(graph)
    return graph


def _after_generation(state: Mapping[str, Any]) -> str:
    requested = json_doc(state.get("input")).get("require_approval")
    return "approval" if requested or draft_fails(json_doc(state.get("draft"))) else "deliver"


def _content_generation() -> StateGraph[Any, RunContext, Any, Any]:
    graph: StateGraph[Any, RunContext, Any, Any] = StateGraph(
        ContentGenerationState, context_schema=RunContext
    )
    graph.add_node("content", step("content", "content_agent", content_generation_step))
    graph.add_node("approval", step("approval", "human", approval_step))
    graph.add_node("deliver", step("deliver", "delivery", deliver_step))
    graph.add_edge(START, "content")
    graph.add_conditional_edges("content", _after_generation, ["approval", "deliver"])
    graph.add_conditional_edges("approval", after_human, ["deliver", END])
    graph.add_edge("deliver", END)
    return graph


def build_graphs(checkpointer: BaseCheckpointSaver[str]) -> dict[str, Graph]:
    """Every workflow graph compiled with ``checkpointer``."""
    return {
        LEAD_QUALIFICATION: _lead_qualification().compile(checkpointer=checkpointer),
        CUSTOMER_FOLLOW_UP: customer_follow_up_graph().compile(checkpointer=checkpointer),
        CONTENT_GENERATION: _content_generation().compile(checkpointer=checkpointer),
    }


def _unique(steps: object) -> list[str]:
    seen: list[str] = []
    for item in steps if isinstance(steps, list) else []:
        if item not in seen:
            seen.append(str(item))
    return seen


def output_of(workflow: str, state: Mapping[str, Any]) -> JsonDoc:
    """The ``RunOutput`` document of a finished run's state."""
    draft = json_doc(state.get("draft"))
    delivered = bool(state.get("delivered"))
    degraded = _unique(state.get("degraded_steps"))
    if workflow == CUSTOMER_FOLLOW_UP:
        return {CUSTOMER_FOLLOW_UP: follow_up_output(state, degraded)}
    if workflow == CONTENT_GENERATION:
        review = json_doc(state.get("review")).get("decision")
        return {
            CONTENT_GENERATION: {
                "draft": draft,
                "approved": review in ("approve", "edit"),
                "delivered": delivered,
                "degraded_steps": degraded,
            }
        }
    decision = json_doc(state.get("decision"))
    output: JsonDoc = {
        "analysis": str(state.get("analysis", "")),
        "qualification": decision.get("qualification", "QUALIFICATION_UNSPECIFIED"),
        "next_best_action": json_doc(decision.get("next_best_action")),
        "delivered": delivered,
        "degraded_steps": degraded,
    }
    if score := json_doc(state.get("score")):
        output["score"] = score
    if draft:
        output["draft"] = draft
    return {LEAD_QUALIFICATION: output}
