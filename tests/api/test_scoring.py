"""ScoringService over real gRPC: scoring, explanations, history, outcomes, settings, tenancy."""

from __future__ import annotations

from collections import defaultdict

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from ai_orchestration.scoring import TOP_DRIVERS, generate_leads
from tests.api._leads import HOT, lead_message, lead_messages, metadata, new_request_id
from tests.conftest import TokenFactory


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> scoring_pb2_grpc.ScoringServiceAsyncStub:
    return scoring_pb2_grpc.ScoringServiceStub(channel)


async def _error(call: object) -> ServiceError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return ServiceError.from_rpc_error(caught.value)


async def test_score_lead_is_explained_and_persisted(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    md = metadata(token(roles=["scoring.reader"]))
    score = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=HOT), metadata=md)
    assert score.lead_id == "hot-1"
    assert score.score == round(100 * score.probability)
    assert score.grade == scoring_pb2.GRADE_A
    assert score.score >= 75
    demo = score.positive_factors[0]
    assert demo.feature == "demo_requested"
    assert demo.reason == f"Requested a demo (+{demo.points})"
    assert 1 <= len(score.positive_factors) <= 5 and len(score.negative_factors) <= 5
    assert score.model_version.startswith("global-")
    assert score.experiment_arm == "control"
    ttl = score.expire_time.ToDatetime() - score.score_time.ToDatetime()
    assert ttl.total_seconds() == 24 * 3600
    assert len(score.input_digest) == 64
    assert 0.5 < score.confidence <= 1.0

    history = await stub.ListLeadScores(
        scoring_pb2.ListLeadScoresRequest(lead_id="hot-1"), metadata=md
    )
    assert list(history.scores) == [score]


async def test_missing_fields_are_scored_with_lower_confidence(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    md = metadata(token())
    bare = await stub.ScoreLead(
        scoring_pb2.ScoreLeadRequest(lead=scoring_pb2.Lead(lead_id="bare")), metadata=md
    )
    full = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=HOT), metadata=md)
    assert 0 <= bare.score <= 100
    assert bare.confidence < full.confidence
    reasons = {f.reason.split(" (")[0] for f in [*bare.positive_factors, *bare.negative_factors]}
    assert "Demo request unknown" in reasons or "Seniority unknown" in reasons


async def test_same_input_same_digest_different_input_different_digest(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    md = metadata(token())
    first = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=HOT), metadata=md)
    again = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=HOT), metadata=md)
    changed = scoring_pb2.Lead()
    changed.CopyFrom(HOT)
    changed.page_visits = 13
    other = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=changed), metadata=md)
    assert first.input_digest == again.input_digest != other.input_digest
    assert first.score_id != again.score_id


async def test_batch_streams_every_lead_in_order_and_names_the_true_drivers(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    leads = lead_messages(generate_leads(2500, seed=11).leads, "batch")
    request = scoring_pb2.BatchScoreLeadsRequest(leads=leads)
    chunks = [c async for c in stub.BatchScoreLeads(request, metadata=metadata(token()))]
    # Chunks of at most 1,000 consecutive scores, each saying where it starts.
    assert [(c.first_index, len(c.scores)) for c in chunks] == [
        (0, 1000),
        (1000, 1000),
        (2000, 500),
    ]
    scores = [s for chunk in chunks for s in chunk.scores]
    assert [s.lead_id for s in scores] == [lead.lead_id for lead in leads]
    assert len({s.score_id for s in scores}) == len(leads)
    # Explanations name the generator's true top drivers: summed over the batch, the factors
    # with the largest absolute contributions are the three strongest true drivers.
    strongest: defaultdict[str, float] = defaultdict(float)
    for s in scores:
        for factor in [*s.positive_factors, *s.negative_factors]:
            strongest[factor.feature] += abs(factor.contribution)
    top = sorted(strongest, key=strongest.__getitem__, reverse=True)[:3]
    assert set(top) == set(TOP_DRIVERS)
    history = await stub.ListLeadScores(
        scoring_pb2.ListLeadScoresRequest(lead_id="batch-2499"), metadata=metadata(token())
    )
    assert [s.score_id for s in history.scores] == [scores[-1].score_id]


async def test_batch_limit_is_invalid_argument(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    leads = [scoring_pb2.Lead(lead_id=f"L-{i}") for i in range(10_001)]
    call = stub.BatchScoreLeads(
        scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=metadata(token())
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    err = ServiceError.from_rpc_error(caught.value)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["leads"]


async def test_cancelled_batch_stops(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    leads = [scoring_pb2.Lead(lead_id=f"C-{i}") for i in range(10_000)]
    call = stub.BatchScoreLeads(
        scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=metadata(token())
    )
    async for chunk in call:
        assert chunk.first_index == 0
        call.cancel()
        break
    assert call.cancelled()
    # Chunks after the cancellation are not scored: the last lead has no history.
    history = await stub.ListLeadScores(
        scoring_pb2.ListLeadScoresRequest(lead_id="C-9999"), metadata=metadata(token())
    )
    assert len(history.scores) == 0


async def test_history_is_paginated_newest_first(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    md = metadata(token())
    ids = []
    for visits in range(5):
        lead = scoring_pb2.Lead(lead_id="paged", page_visits=visits)
        ids.append(
            (await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=lead), metadata=md)).score_id
        )
    seen: list[str] = []
    token_ = ""
    pages = 0
    while True:
        page = await stub.ListLeadScores(
            scoring_pb2.ListLeadScoresRequest(lead_id="paged", page_size=2, page_token=token_),
            metadata=md,
        )
        pages += 1
        seen += [s.score_id for s in page.scores]
        token_ = page.next_page_token
        if not token_:
            break
    assert pages == 3
    assert seen == list(reversed(ids))

    err = await _error(
        stub.ListLeadScores(
            scoring_pb2.ListLeadScoresRequest(lead_id="paged", page_token="garbage"), metadata=md
        )
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["page_token"]


async def test_record_outcome_is_idempotent(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    md = metadata(token(roles=["scoring.writer"]))
    request = scoring_pb2.RecordLeadOutcomeRequest(
        request_id=new_request_id(),
        lead_id="won-1",
        outcome=scoring_pb2.LeadOutcome.OUTCOME_CONVERTED,
        lead=HOT,
    )
    first = await stub.RecordLeadOutcome(request, metadata=md)
    retry = await stub.RecordLeadOutcome(request, metadata=md)
    assert first == retry
    assert first.outcome == scoring_pb2.LeadOutcome.OUTCOME_CONVERTED

    changed = scoring_pb2.RecordLeadOutcomeRequest()
    changed.CopyFrom(request)
    changed.outcome = scoring_pb2.LeadOutcome.OUTCOME_DISQUALIFIED
    err = await _error(stub.RecordLeadOutcome(changed, metadata=md))
    assert err.code is grpc.StatusCode.ABORTED
    assert err.reason == "REQUEST_ID_REUSED"

    reader = metadata(token(roles=["scoring.reader"]))
    denied = await _error(stub.RecordLeadOutcome(request, metadata=reader))
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED


async def test_outcome_needs_a_defined_outcome(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    request = scoring_pb2.RecordLeadOutcomeRequest(request_id=new_request_id(), lead_id="x")
    err = await _error(stub.RecordLeadOutcome(request, metadata=metadata(token())))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["outcome"]


async def test_grade_cutoffs_and_ttl_are_per_tenant(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    admin = metadata(token(tenant_id="strict", roles=["scoring.admin"]))
    other = metadata(token(tenant_id="lenient"))
    defaults = await stub.GetScoringSettings(
        scoring_pb2.GetScoringSettingsRequest(), metadata=admin
    )
    assert (defaults.grade_a_min_score, defaults.grade_b_min_score, defaults.grade_c_min_score) == (
        75,
        50,
        25,
    )
    assert defaults.score_ttl.seconds == 86_400
    updated = await stub.UpdateScoringSettings(
        scoring_pb2.UpdateScoringSettingsRequest(
            settings=scoring_pb2.ScoringSettings(
                grade_a_min_score=99, score_ttl=Duration(seconds=3600)
            ),
            update_mask=FieldMask(paths=["grade_a_min_score", "score_ttl"]),
        ),
        metadata=admin,
    )
    assert (updated.grade_a_min_score, updated.grade_b_min_score) == (99, 50)
    leads = lead_messages(generate_leads(300, seed=21).leads, "graded")
    request = scoring_pb2.BatchScoreLeadsRequest(leads=leads)
    strict_scores = [
        s async for chunk in stub.BatchScoreLeads(request, metadata=admin) for s in chunk.scores
    ]
    lenient_scores = [
        s async for chunk in stub.BatchScoreLeads(request, metadata=other) for s in chunk.scores
    ]

    def grade(score: int, a: int) -> int:
        letters = [(a, scoring_pb2.GRADE_A), (50, scoring_pb2.GRADE_B), (25, scoring_pb2.GRADE_C)]
        return next((g for cut, g in letters if score >= cut), scoring_pb2.GRADE_D)

    assert [s.score for s in strict_scores] == [s.score for s in lenient_scores]
    assert [s.grade for s in strict_scores] == [grade(s.score, 99) for s in strict_scores]
    assert [s.grade for s in lenient_scores] == [grade(s.score, 75) for s in lenient_scores]
    assert any(75 <= s.score < 99 for s in strict_scores)  # so the cut-off made a difference
    strict = strict_scores[0]
    strict_ttl = strict.expire_time.ToDatetime() - strict.score_time.ToDatetime()
    assert strict_ttl.total_seconds() == 3600


async def test_inconsistent_settings_are_rejected_and_change_nothing(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    admin = metadata(token(roles=["scoring.admin"]))
    err = await _error(
        stub.UpdateScoringSettings(
            scoring_pb2.UpdateScoringSettingsRequest(
                settings=scoring_pb2.ScoringSettings(grade_b_min_score=80),
                update_mask=FieldMask(paths=["grade_b_min_score"]),
            ),
            metadata=admin,
        )
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["settings.grade_b_min_score"]
    bad_mask = await _error(
        stub.UpdateScoringSettings(
            scoring_pb2.UpdateScoringSettingsRequest(
                settings=scoring_pb2.ScoringSettings(),
                update_mask=FieldMask(paths=["champion_version"]),
            ),
            metadata=admin,
        )
    )
    assert [v.field for v in bad_mask.field_violations] == ["update_mask.paths"]
    unknown = await _error(
        stub.UpdateScoringSettings(
            scoring_pb2.UpdateScoringSettingsRequest(
                settings=scoring_pb2.ScoringSettings(
                    challenger_version="v-nope", challenger_share=0.5
                ),
                update_mask=FieldMask(paths=["challenger_version", "challenger_share"]),
            ),
            metadata=admin,
        )
    )
    assert [v.field for v in unknown.field_violations] == ["settings.challenger_version"]
    current = await stub.GetScoringSettings(scoring_pb2.GetScoringSettingsRequest(), metadata=admin)
    assert (current.grade_b_min_score, current.challenger_version) == (50, "")
    reader = metadata(token(roles=["scoring.reader"]))
    denied = await _error(
        stub.UpdateScoringSettings(
            scoring_pb2.UpdateScoringSettingsRequest(settings=scoring_pb2.ScoringSettings()),
            metadata=reader,
        )
    )
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED


async def test_tenants_never_see_each_others_scores(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, token: TokenFactory
) -> None:
    a, b = metadata(token(tenant_id="tenant-a")), metadata(token(tenant_id="tenant-b"))
    lead = lead_message("shared-id", generate_leads(1, seed=5).leads[0])
    await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=lead), metadata=a)
    mine = await stub.ListLeadScores(
        scoring_pb2.ListLeadScoresRequest(lead_id="shared-id"), metadata=a
    )
    theirs = await stub.ListLeadScores(
        scoring_pb2.ListLeadScoresRequest(lead_id="shared-id"), metadata=b
    )
    assert len(mine.scores) == 1
    assert len(theirs.scores) == 0
