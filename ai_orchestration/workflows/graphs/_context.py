"""What the graph nodes work with: the runner's collaborators and the run being executed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.trace import NoOpTracer, Tracer

from ai_orchestration.llm import InjectionGuard, LlmGateway, LlmStack, PromptTemplateRegistry
from ai_orchestration.scoring import ScoringEngine
from ai_orchestration.storage import Clock, utc_now
from ai_orchestration.workflows._types import DeliverySink, EventSink, RunRecord
from ai_orchestration.workflows.graphs._content import ContentPolicy
from ai_orchestration.workflows.graphs._decision import DecisionPolicy
from ai_orchestration.workflows.graphs._follow_up_rules import (
    CustomerFollowUpPolicy,
    CustomerHistory,
    PassageSource,
)
from ai_orchestration.workflows.graphs._policy import DecisionPolicyStore
from ai_orchestration.workflows.graphs._tool_uses import ExternalTools, ExternalToolUse

__all__ = ["AnalysisPolicy", "RunContext", "WorkflowDeps"]

_HISTORY: Final[int] = 5


@dataclass(frozen=True, slots=True)
class AnalysisPolicy:
    """How the lead analysis agent gathers context and asks for its analysis."""

    model: str = "fast"
    """Logical model of the analysis call."""
    max_tokens: int = 220
    """Most tokens of the analysis (its parts, as JSON)."""
    temperature: float = 0.0
    """Sampling temperature (0: the most likely text, repeatable)."""
    frequency_penalty: float = 0.3
    """Penalty on tokens the answer already used, against the small model's loops."""
    history_size: int = _HISTORY
    """Scores of the lead the ``score_history`` tool returns (newest first)."""
    company_scan_limit: int = 2000
    """Outcomes the ``company_outcomes`` tool scans for the lead's company (bounded: the store
    has no index by company yet)."""


@dataclass(frozen=True, slots=True)
class WorkflowDeps:
    """The collaborators of the workflow graphs (all keyword-only, none global)."""

    gateway: LlmGateway
    """The one way to call an LLM."""
    templates: PromptTemplateRegistry
    """Prompt templates (built-ins seeded)."""
    guard: InjectionGuard
    """Injection policy for caller text (the lead's notes)."""
    scoring: ScoringEngine
    """The scoring core (started)."""
    delivery: DeliverySink
    """Where approved drafts go, exactly once per idempotency key."""
    decision: DecisionPolicy = field(default_factory=DecisionPolicy)
    """Thresholds of the decision rules and of the hand-off to a human, where ``policies`` is
    not given."""
    policies: DecisionPolicyStore | None = None
    """Each tenant's own thresholds (WorkflowService settings), defaulting to the store's."""
    content: ContentPolicy = field(default_factory=ContentPolicy)
    """Draft writing and validation."""
    analysis: AnalysisPolicy = field(default_factory=AnalysisPolicy)
    """Context gathering and the analysis call."""
    histories: CustomerHistory | None = None
    """The customers' interactions with their signals (``storage.InteractionRepository``);
    ``customer_follow_up`` is served only with both this and :attr:`retriever`."""
    retriever: PassageSource | None = None
    """Retrieval over a customer's passages (``insight_writing.Retriever``)."""
    follow_up: CustomerFollowUpPolicy = field(default_factory=CustomerFollowUpPolicy)
    """How much of a customer the follow-up reads and cites."""
    clock: Clock = utc_now
    """Time of interrupts, and the "now" of the insight rules (days of silence, trends)."""
    tracer: Tracer = field(default_factory=NoOpTracer)
    """Spans of the steps and tool calls (children of the run's span); none by default."""
    tools: ExternalTools | None = None
    """External tools (the MCP tool pool) the agents consult; none by default."""
    tool_uses: Mapping[str, tuple[ExternalToolUse, ...]] = field(default_factory=dict)
    """Per agent, which external tools it calls and how (``agents`` of the MCP servers
    file)."""

    @property
    def serves_follow_up(self) -> bool:
        """Whether ``customer_follow_up`` can run: the insight core was passed in."""
        return self.histories is not None and self.retriever is not None

    @classmethod
    def from_stack(
        cls,
        stack: LlmStack,
        *,
        scoring: ScoringEngine,
        delivery: DeliverySink,
        decision: DecisionPolicy | None = None,
        content: ContentPolicy | None = None,
        analysis: AnalysisPolicy | None = None,
        policies: DecisionPolicyStore | None = None,
        histories: CustomerHistory | None = None,
        retriever: PassageSource | None = None,
        follow_up: CustomerFollowUpPolicy | None = None,
        tracer: Tracer | None = None,
        tools: ExternalTools | None = None,
        tool_uses: Mapping[str, tuple[ExternalToolUse, ...]] | None = None,
    ) -> WorkflowDeps:
        """Deps taking the gateway, templates and guard of a server's :class:`LlmStack`."""
        return cls(
            gateway=stack.gateway,
            templates=stack.templates,
            guard=stack.guard,
            scoring=scoring,
            delivery=delivery,
            decision=decision or DecisionPolicy(),
            content=content or ContentPolicy(),
            analysis=analysis or AnalysisPolicy(),
            policies=policies,
            histories=histories,
            retriever=retriever,
            follow_up=follow_up or CustomerFollowUpPolicy(),
            tracer=tracer or NoOpTracer(),
            tools=tools,
            tool_uses=dict(tool_uses or {}),
        )


@dataclass(frozen=True, slots=True)
class RunContext:
    """LangGraph's run-scoped context of one execution (``Runtime.context`` in the nodes)."""

    run: RunRecord
    """The run being executed."""
    events: EventSink
    """Where the nodes report steps, tokens, tool calls and usage."""
    deps: WorkflowDeps
    """The runner's collaborators."""
    interruptible: bool = True
    """Whether the run's workflow may pause for a human (its definition says so). A step that
    would hand a failing draft to a human uses the template instead when it may not."""

    async def decision_policy(self) -> DecisionPolicy:
        """The decision thresholds of the run's tenant."""
        if self.deps.policies is None:
            return self.deps.decision
        return await self.deps.policies.get(self.run.tenant_id)
