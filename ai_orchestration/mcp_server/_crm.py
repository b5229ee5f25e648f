"""Scoring and workflow tools: the ScoringService and WorkflowService cores, for MCP clients.

Each tool stands for one RPC: it needs that RPC's role, meets that RPC's request rules and
answers with that RPC's response (proto JSON). The tenant is the caller's, never an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from crm.ai.v1 import scoring_pb2, workflow_pb2
from mcp.types import ToolAnnotations
from pydantic import Field

from ai_orchestration.mcp_server._auth import caller
from ai_orchestration.mcp_server._leads import LeadArgs
from ai_orchestration.mcp_server._messages import as_json, parsed, validated
from ai_orchestration.mcp_server._refusals import refusals
from ai_orchestration.scoring import LeadInput, LeadScorer, ScoringEngine
from ai_orchestration.security import Authenticator
from ai_orchestration.storage import IdempotencyRepository, compute_request_digest, utc_now
from ai_orchestration.wire.scoring import lead_features, lead_outcome, lead_score
from ai_orchestration.wire.workflows import document, run_message
from ai_orchestration.workflows.engine import RunEngine

__all__ = ["CrmTools"]

SCORE_LEAD: Final = "/crm.ai.v1.ScoringService/ScoreLead"
RECORD_LEAD_OUTCOME: Final = "/crm.ai.v1.ScoringService/RecordLeadOutcome"
START_RUN: Final = "/crm.ai.v1.WorkflowService/StartRun"
GET_RUN: Final = "/crm.ai.v1.WorkflowService/GetRun"
IDEMPOTENCY_TTL: Final = timedelta(days=7)
"""How long a ``request_id`` replays its first outcome (as for the RPC)."""

RequestId = Annotated[
    str,
    Field(
        min_length=36,
        max_length=36,
        description="A UUID you choose for this request; sending it again with the same "
        "arguments returns the first result instead of acting twice.",
    ),
]


class CrmTools:
    """``score_lead``, ``record_lead_outcome``, ``start_workflow`` and ``get_run``."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        scoring: ScoringEngine,
        scorer: LeadScorer,
        idempotency: IdempotencyRepository,
        workflows: RunEngine,
    ) -> None:
        """``scoring`` records outcomes, ``scorer`` scores; ``workflows`` starts and reads
        runs."""
        self._authenticator = authenticator
        self._scoring = scoring
        self._scorer = scorer
        self._idempotency = idempotency
        self._workflows = workflows

    def tools(self) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
        """Each tool with its hints for clients."""
        return [
            (self.score_lead, ToolAnnotations(title="Score a lead", idempotent_hint=False)),
            (
                self.record_lead_outcome,
                ToolAnnotations(title="Record a lead's outcome", idempotent_hint=True),
            ),
            (
                self.start_workflow,
                ToolAnnotations(title="Start a workflow run", idempotent_hint=True),
            ),
            (self.get_run, ToolAnnotations(title="Get a workflow run", read_only_hint=True)),
        ]

    async def score_lead(
        self, lead: Annotated[LeadArgs, Field(description="The lead to score.")]
    ) -> dict[str, Any]:
        """Score a lead 0-100 with the trained model: grade A-D, conversion probability,
        confidence, and the factors that raised and lowered the score, each with a reason.
        The score is stored in the lead's score history. Needs the role scoring.reader."""
        with refusals():
            tenant = caller(self._authenticator, SCORE_LEAD).tenant_id
            request = validated(scoring_pb2.ScoreLeadRequest(lead=lead.message()))
            features = lead_features(request.lead)
            record = await self._scorer.score_one(tenant, LeadInput(lead.lead_id, features))
            return as_json(lead_score(record))

    async def record_lead_outcome(
        self,
        request_id: RequestId,
        lead_id: Annotated[
            str, Field(min_length=1, max_length=128, description="The lead's CRM id.")
        ],
        outcome: Annotated[
            Literal["converted", "disqualified"], Field(description="What became of the lead.")
        ],
        lead: Annotated[
            LeadArgs | None,
            Field(description="The lead's inputs for training; default: its latest score's."),
        ] = None,
    ) -> dict[str, Any]:
        """Record whether a lead converted or was disqualified; the scoring model learns from
        recorded outcomes. Needs the role scoring.writer."""
        with refusals():
            tenant = caller(self._authenticator, RECORD_LEAD_OUTCOME).tenant_id
            name = "OUTCOME_CONVERTED" if outcome == "converted" else "OUTCOME_DISQUALIFIED"
            request = scoring_pb2.RecordLeadOutcomeRequest(
                request_id=request_id,
                lead_id=lead_id,
                outcome=scoring_pb2.LeadOutcome.Outcome.Value(name),
            )
            if lead is not None:
                request.lead.CopyFrom(lead.message())
            validated(request)
            return await self._record(tenant, request)

    async def _record(
        self, tenant: str, request: scoring_pb2.RecordLeadOutcomeRequest
    ) -> dict[str, Any]:
        # The same idempotency records as the RPC: a request_id used over gRPC replays here.
        digest = compute_request_digest(request.SerializeToString(deterministic=True))
        stored = await self._idempotency.get(tenant, RECORD_LEAD_OUTCOME, request.request_id)
        if stored is not None:
            stored.ensure_same_request(digest)
            return as_json(scoring_pb2.LeadOutcome.FromString(stored.response))
        outcome = await self._scoring.record_outcome(
            tenant,
            request.lead_id,
            converted=request.outcome == scoring_pb2.LeadOutcome.OUTCOME_CONVERTED,
            outcome_time=None,
            lead=lead_features(request.lead) if request.HasField("lead") else None,
        )
        record = await self._idempotency.put(
            tenant,
            RECORD_LEAD_OUTCOME,
            request.request_id,
            request_digest=digest,
            response=lead_outcome(outcome).SerializeToString(),
            expires_at=utc_now() + IDEMPOTENCY_TTL,
        )
        return as_json(scoring_pb2.LeadOutcome.FromString(record.response))

    async def start_workflow(
        self,
        request_id: RequestId,
        workflow: Annotated[
            Literal["lead_qualification", "customer_follow_up", "content_generation"],
            Field(description="The workflow to run."),
        ],
        input: Annotated[
            dict[str, Any],
            Field(
                description="The workflow's typed input in proto JSON: lead_qualification "
                "takes LeadQualificationInput ({lead: {...}, notes}), customer_follow_up "
                "CustomerFollowUpInput ({customer_id, goal, channel, recipient, "
                "require_approval}), content_generation ContentGenerationInput ({recipient, "
                "purpose, channel, tone, key_points, require_approval})."
            ),
        ],
        priority: Annotated[int, Field(ge=0, le=9, description="Queue priority, 0-9.")] = 0,
    ) -> dict[str, Any]:
        """Start a workflow run (queued, executed durably); returns the run with its run_id
        and state. Follow it with get_run. Needs the role workflow.operator."""
        with refusals():
            tenant = caller(self._authenticator, START_RUN).tenant_id
            request = workflow_pb2.StartRunRequest(request_id=request_id, priority=priority)
            parsed(input, getattr(request, workflow), field="input")
            validated(request)
            started = await self._workflows.start_run(
                tenant,
                workflow=workflow,
                input_document=document(getattr(request, workflow)),
                request_id=request_id,
                request_digest=compute_request_digest(
                    request.SerializeToString(deterministic=True)
                ),
                priority=priority,
            )
            return as_json(run_message(started.run))

    async def get_run(
        self,
        run_id: Annotated[
            str, Field(min_length=36, max_length=36, description="The run's id (a UUID).")
        ],
    ) -> dict[str, Any]:
        """A workflow run: state, progress, pending human input, output once completed, error
        once failed, usage. Needs the role workflow.reader."""
        with refusals():
            tenant = caller(self._authenticator, GET_RUN).tenant_id
            validated(workflow_pb2.GetRunRequest(run_id=run_id))
            return as_json(run_message(await self._workflows.get(tenant, run_id)))
