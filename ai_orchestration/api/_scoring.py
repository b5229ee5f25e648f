"""ScoringService: a thin adapter from ``crm.ai.v1`` messages onto the scoring core.

Authentication, the role check, request validation (protovalidate) and error mapping happen in
the interceptor before and after these methods; the tenant is the caller's, never a field.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Final

import grpc.aio
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from google.protobuf.message import Message

from ai_orchestration.api._validation import (
    bad_page_token,
    masked_paths,
    validate_request,
    validates_own_request,
)
from ai_orchestration.batch_scoring import BatchScorer
from ai_orchestration.scoring import (
    LeadInput,
    LeadScorer,
    ModelTrainer,
    ScoringEngine,
    ScoringSettingsStore,
    TrainingResult,
    checked_settings,
)
from ai_orchestration.security import current_principal
from ai_orchestration.storage import (
    IdempotencyRepository,
    InvalidPageTokenError,
    LeadScoreRepository,
    compute_request_digest,
    utc_now,
)
from ai_orchestration.wire.scoring import (
    lead_features,
    lead_outcome,
    lead_score,
    scoring_model,
    settings_message,
    training_event,
)
from ai_orchestration.wire.times import duration

_SERVICE: Final[str] = "/crm.ai.v1.ScoringService/"
DEFAULT_PAGE_SIZE: Final[int] = 50
IDEMPOTENCY_TTL: Final[timedelta] = timedelta(days=7)
"""How long a ``request_id`` replays its first response."""
_SETTABLE: Final[tuple[str, ...]] = (
    "challenger_share",
    "challenger_version",
    "grade_a_min_score",
    "grade_b_min_score",
    "grade_c_min_score",
    "score_ttl",
)

Context = grpc.aio.ServicerContext[Message, Message]
_Idempotent = scoring_pb2.RecordLeadOutcomeRequest | scoring_pb2.TrainScoringModelRequest


def _page_size(requested: int) -> int:
    return requested or DEFAULT_PAGE_SIZE


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    """Serves ``crm.ai.v1.ScoringService`` from a :class:`ScoringEngine`."""

    def __init__(
        self,
        *,
        engine: ScoringEngine,
        scorer: LeadScorer,
        scores: LeadScoreRepository,
        trainer: ModelTrainer,
        settings: ScoringSettingsStore,
        idempotency: IdempotencyRepository,
        batch: BatchScorer,
    ) -> None:
        """``engine`` records outcomes, lists models and changes settings; the rest is named
        for what each RPC needs."""
        self.engine = engine
        self.scorer = scorer
        self.scores = scores
        self.trainer = trainer
        self.settings = settings
        self.idempotency = idempotency
        self.batch = batch

    async def ScoreLead(
        self, request: scoring_pb2.ScoreLeadRequest, context: Context
    ) -> scoring_pb2.LeadScore:
        tenant = current_principal().tenant_id
        lead = LeadInput(request.lead.lead_id, lead_features(request.lead))
        return lead_score(await self.scorer.score_one(tenant, lead))

    @validates_own_request
    async def BatchScoreLeads(  # type: ignore[override]
        self, request: scoring_pb2.BatchScoreLeadsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        # Serialised BatchScoreLeadsResponses, made where the chunk was scored (a worker
        # process); the pipeline's serializer passes bytes through. The request is validated
        # while the first chunks are scored.
        tenant = current_principal().tenant_id
        check = functools.partial(validate_request, request)
        async for response in self.batch.stream(tenant, request.leads, check):
            yield response

    async def ListLeadScores(
        self, request: scoring_pb2.ListLeadScoresRequest, context: Context
    ) -> scoring_pb2.ListLeadScoresResponse:
        tenant = current_principal().tenant_id
        try:
            records, token = await self.scores.list_for_lead(
                tenant,
                request.lead_id,
                page_size=_page_size(request.page_size),
                page_token=request.page_token,
            )
        except InvalidPageTokenError as error:
            raise bad_page_token(error) from error
        return scoring_pb2.ListLeadScoresResponse(
            scores=[lead_score(r) for r in records], next_page_token=token
        )

    async def _replay(self, method: str, request: _Idempotent) -> tuple[str, bytes | None]:
        """The request's digest, and the response stored for its ``request_id`` if this is a
        retry (ABORTED ``REQUEST_ID_REUSED`` if the id came with a different request)."""
        tenant = current_principal().tenant_id
        digest = compute_request_digest(request.SerializeToString(deterministic=True))
        stored = await self.idempotency.get(tenant, _SERVICE + method, request.request_id)
        if stored is None:
            return digest, None
        stored.ensure_same_request(digest)
        return digest, stored.response

    async def _remember(
        self, method: str, request: _Idempotent, digest: str, response: Message
    ) -> bytes:
        """Stores the response of a ``request_id``; returns the one stored first if a
        concurrent retry won the race."""
        record = await self.idempotency.put(
            current_principal().tenant_id,
            _SERVICE + method,
            request.request_id,
            request_digest=digest,
            response=response.SerializeToString(),
            expires_at=utc_now() + IDEMPOTENCY_TTL,
        )
        return record.response

    async def RecordLeadOutcome(
        self, request: scoring_pb2.RecordLeadOutcomeRequest, context: Context
    ) -> scoring_pb2.LeadOutcome:
        digest, replayed = await self._replay("RecordLeadOutcome", request)
        if replayed is not None:
            return scoring_pb2.LeadOutcome.FromString(replayed)
        outcome = await self.engine.record_outcome(
            current_principal().tenant_id,
            request.lead_id,
            converted=request.outcome == scoring_pb2.LeadOutcome.OUTCOME_CONVERTED,
            outcome_time=(
                request.outcome_time.ToDatetime(tzinfo=UTC)
                if request.HasField("outcome_time")
                else None
            ),
            lead=lead_features(request.lead) if request.HasField("lead") else None,
        )
        stored = await self._remember("RecordLeadOutcome", request, digest, lead_outcome(outcome))
        return scoring_pb2.LeadOutcome.FromString(stored)

    async def ListScoringModels(
        self, request: scoring_pb2.ListScoringModelsRequest, context: Context
    ) -> scoring_pb2.ListScoringModelsResponse:
        tenant = current_principal().tenant_id
        try:
            views, token = await self.engine.list_models(
                tenant, page_size=_page_size(request.page_size), page_token=request.page_token
            )
        except InvalidPageTokenError as error:
            raise bad_page_token(error) from error
        return scoring_pb2.ListScoringModelsResponse(
            models=[scoring_model(v) for v in views], next_page_token=token
        )

    async def TrainScoringModel(
        self, request: scoring_pb2.TrainScoringModelRequest, context: Context
    ) -> AsyncIterator[scoring_pb2.TrainScoringModelEvent]:
        tenant = current_principal().tenant_id
        digest, replayed = await self._replay("TrainScoringModel", request)
        if replayed is not None:  # a retry: replay the result, do not train again
            yield scoring_pb2.TrainScoringModelEvent.FromString(replayed)
            return
        async for event in self.trainer.train(tenant, challenger_share=request.challenger_share):
            if not isinstance(event, TrainingResult):
                yield training_event(event)
                continue
            (view,) = await self.engine.views(tenant, [event.model])
            message = training_event(event, view)
            await self._remember("TrainScoringModel", request, digest, message)
            yield message

    async def GetScoringSettings(
        self, request: scoring_pb2.GetScoringSettingsRequest, context: Context
    ) -> scoring_pb2.ScoringSettings:
        tenant = current_principal().tenant_id
        return settings_message(await self.settings.get(tenant))

    async def UpdateScoringSettings(
        self, request: scoring_pb2.UpdateScoringSettingsRequest, context: Context
    ) -> scoring_pb2.ScoringSettings:
        tenant = current_principal().tenant_id
        paths = masked_paths(request.update_mask.paths, _SETTABLE)
        merged = settings_message(await self.settings.get(tenant))
        for path in paths:
            if path == "score_ttl":
                merged.score_ttl.CopyFrom(request.settings.score_ttl)
            else:
                setattr(merged, path, getattr(request.settings, path))
        settings = checked_settings(
            grade_a=merged.grade_a_min_score,
            grade_b=merged.grade_b_min_score,
            grade_c=merged.grade_c_min_score,
            score_ttl=duration(merged.score_ttl),
            champion_version=merged.champion_version,
            challenger_version=merged.challenger_version,
            challenger_share=merged.challenger_share,
            field_prefix="settings.",
        )
        return settings_message(await self.engine.update_settings(tenant, settings))
