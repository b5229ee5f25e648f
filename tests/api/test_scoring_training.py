"""Training over real gRPC: progress, the publication gate, A/B experiments, tenancy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError

from ai_orchestration.scoring import MIN_TENANT_CONVERSIONS, MIN_TENANT_LEADS, generate_leads
from tests.api._leads import lead_messages, metadata, new_request_id
from tests.conftest import TokenFactory

if TYPE_CHECKING:  # the async stub class exists only in the generated .pyi
    Stub: TypeAlias = scoring_pb2_grpc.ScoringServiceAsyncStub
Event = scoring_pb2.TrainScoringModelEvent
CONVERTED = scoring_pb2.LeadOutcome.OUTCOME_CONVERTED
DISQUALIFIED = scoring_pb2.LeadOutcome.OUTCOME_DISQUALIFIED


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return scoring_pb2_grpc.ScoringServiceStub(channel)


async def _record(
    stub: Stub,
    md: tuple[tuple[str, str], ...],
    leads: Sequence[scoring_pb2.Lead],
    converted: Sequence[bool],
) -> None:
    async def one(lead: scoring_pb2.Lead, won: bool) -> None:
        await stub.RecordLeadOutcome(
            scoring_pb2.RecordLeadOutcomeRequest(
                request_id=new_request_id(),
                lead_id=lead.lead_id,
                outcome=CONVERTED if won else DISQUALIFIED,
                lead=lead,
            ),
            metadata=md,
        )

    pairs = list(zip(leads, converted, strict=True))
    for start in range(0, len(pairs), 100):
        await asyncio.gather(*(one(lead, won) for lead, won in pairs[start : start + 100]))


async def _train(
    stub: Stub, md: tuple[tuple[str, str], ...], request_id: str = "", share: float = 0.0
) -> list[Event]:
    request = scoring_pb2.TrainScoringModelRequest(
        request_id=request_id or new_request_id(), challenger_share=share
    )
    return [event async for event in stub.TrainScoringModel(request, metadata=md)]


def _pair(demo: bool) -> scoring_pb2.Lead:
    return scoring_pb2.Lead(
        lead_id=f"probe-{demo}",
        email="vp@mid.example",
        employee_count=300,
        seniority=scoring_pb2.SENIORITY_VP,
        source=scoring_pb2.LEAD_SOURCE_WEB,
        page_visits=4,
        pricing_page_visits=1,
        demo_requested=demo,
        days_since_last_touch=5,
    )


async def test_too_few_outcomes_is_failed_precondition(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token(tenant_id="tiny"))
    data = generate_leads(20, seed=3)
    await _record(stub, md, lead_messages(data.leads, "tiny"), data.converted.tolist())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _train(stub, md)
    err = ServiceError.from_rpc_error(caught.value)
    assert err.code is grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "NOT_ENOUGH_OUTCOMES"
    assert "RecordLeadOutcome" in err.message


async def test_contradicting_outcomes_retrain_and_change_the_ranking(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token(tenant_id="contrarian"))
    probe = scoring_pb2.BatchScoreLeadsRequest(leads=[_pair(True), _pair(False)])
    before = [s async for chunk in stub.BatchScoreLeads(probe, metadata=md) for s in chunk.scores]
    assert before[0].score > before[1].score  # the global model: a demo request is good news

    # In this tenant's market a demo request is a bad sign.
    data = generate_leads(2000, seed=41, drivers={"demo_requested": -2.5})
    assert data.converted.sum() >= MIN_TENANT_CONVERSIONS and len(data.leads) >= MIN_TENANT_LEADS
    await _record(stub, md, lead_messages(data.leads, "c"), data.converted.tolist())
    events = await _train(stub, md)

    progress = [e.progress for e in events if e.HasField("progress")]
    stages = [p.stage for p in progress]
    assert stages[0] == scoring_pb2.TrainingProgress.STAGE_LOADING
    assert progress[0].rows == 2000
    assert "tenant's 2000 outcomes" in progress[0].message
    folds = [
        p for p in progress if p.stage == scoring_pb2.TrainingProgress.STAGE_FITTING and p.fold
    ]
    assert [p.fold for p in folds] == [1, 2, 3] and all(0.5 < p.auc < 1 for p in folds)
    assert stages[-1] == scoring_pb2.TrainingProgress.STAGE_EVALUATING
    result = events[-1].result
    assert result.published, result.reason
    assert result.model.metrics.auc >= result.previous_auc
    assert result.model.state == scoring_pb2.ScoringModel.STATE_PUBLISHED
    assert not getattr(result.model, "global")

    after = [s async for chunk in stub.BatchScoreLeads(probe, metadata=md) for s in chunk.scores]
    assert after[0].model_version == result.model.version
    assert after[0].score < after[1].score  # the ranking flipped
    demo = next(f for f in after[0].negative_factors if f.feature == "demo_requested")
    assert demo.reason.startswith("Requested a demo (-")

    # Other tenants still get the global model and never see this one.
    other = metadata(token(tenant_id="bystander"))
    theirs = [
        s async for chunk in stub.BatchScoreLeads(probe, metadata=other) for s in chunk.scores
    ]
    assert theirs[0].model_version == before[0].model_version
    listed = await stub.ListScoringModels(scoring_pb2.ListScoringModelsRequest(), metadata=other)
    assert result.model.version not in {m.version for m in listed.models}


async def test_a_worse_model_is_not_published(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token(tenant_id="unlucky"))
    # Enough outcomes to train on the tenant's data alone, far fewer than the global model had:
    # the new model is worse than the global one on the same newest leads.
    data = generate_leads(1400, seed=43)
    await _record(stub, md, lead_messages(data.leads, "u"), data.converted.tolist())
    events = await _train(stub, md)
    result = events[-1].result
    assert not result.published
    assert result.model.metrics.auc < result.previous_auc
    assert result.reason.startswith("not published: held-out AUC")
    assert result.model.state == scoring_pb2.ScoringModel.STATE_REJECTED

    score = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=_pair(True)), metadata=md)
    assert score.model_version.startswith("global-")
    listed = await stub.ListScoringModels(scoring_pb2.ListScoringModelsRequest(), metadata=md)
    states = {m.version: m.state for m in listed.models}
    assert states[result.model.version] == scoring_pb2.ScoringModel.STATE_REJECTED
    assert states[score.model_version] == scoring_pb2.ScoringModel.STATE_PUBLISHED


async def test_small_tenants_train_on_combined_data_and_retries_replay(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token(tenant_id="small"))
    data = generate_leads(300, seed=45)
    await _record(stub, md, lead_messages(data.leads, "s"), data.converted.tolist())
    request_id = new_request_id()
    events = await _train(stub, md, request_id)
    loading = events[0].progress
    assert loading.rows > 300
    assert "below the minimum of 1000 leads and 120 conversions" in loading.message
    retried = await _train(stub, md, request_id)
    assert retried == [events[-1]]  # the result replayed, nothing trained again
    listed = await stub.ListScoringModels(scoring_pb2.ListScoringModelsRequest(), metadata=md)
    assert sum(1 for m in listed.models if not getattr(m, "global")) == 1


async def test_ab_experiment_splits_by_lead_and_reports_each_arm(
    stub: Stub, token: TokenFactory
) -> None:
    md = metadata(token(tenant_id="experimenter"))
    data = generate_leads(1500, seed=47, drivers={"demo_requested": -2.5})
    await _record(stub, md, lead_messages(data.leads, "e"), data.converted.tolist())
    result = (await _train(stub, md, share=0.3))[-1].result
    assert result.published
    challenger = result.model.version
    assert result.model.traffic_share == pytest.approx(0.3)

    leads = generate_leads(3000, seed=49)
    messages = lead_messages(leads.leads, "ab")
    request = scoring_pb2.BatchScoreLeadsRequest(leads=messages)
    scores = [s async for chunk in stub.BatchScoreLeads(request, metadata=md) for s in chunk.scores]
    arms = {s.experiment_arm for s in scores}
    assert arms == {"control", "challenger"}
    share = sum(s.experiment_arm == "challenger" for s in scores) / len(scores)
    assert abs(share - 0.3) <= 0.03
    assert {s.model_version for s in scores if s.experiment_arm == "challenger"} == {challenger}
    again = [s async for chunk in stub.BatchScoreLeads(request, metadata=md) for s in chunk.scores]
    assert [s.experiment_arm for s in again] == [s.experiment_arm for s in scores]

    # Outcomes of the scored leads make the live performance of each arm.
    await _record(stub, md, messages[:600], leads.converted[:600].tolist())
    listed = await stub.ListScoringModels(scoring_pb2.ListScoringModelsRequest(), metadata=md)
    models = {m.version: m for m in listed.models}
    live = {a.arm: a for a in models[challenger].arm_performance}
    assert live["challenger"].scored_leads == sum(s.experiment_arm == "challenger" for s in scores)
    assert 0 < live["challenger"].outcomes < 600
    assert 0.0 < live["challenger"].conversion_rate < 1.0
    champion = next(m for m in listed.models if getattr(m, "global"))
    assert champion.traffic_share == pytest.approx(0.7)
    control = {a.arm: a for a in champion.arm_performance}["control"]
    assert control.outcomes + live["challenger"].outcomes == 600
    assert 0.5 < control.auc < 1.0  # the global model ranks this default-world data well

    # Ending the experiment retires the challenger and sends every lead to the champion.
    settings = await stub.GetScoringSettings(scoring_pb2.GetScoringSettingsRequest(), metadata=md)
    settings.challenger_version, settings.challenger_share = "", 0.0
    await stub.UpdateScoringSettings(
        scoring_pb2.UpdateScoringSettingsRequest(settings=settings), metadata=md
    )
    ended = [s async for chunk in stub.BatchScoreLeads(request, metadata=md) for s in chunk.scores]
    assert {s.experiment_arm for s in ended} == {"control"}
    listed = await stub.ListScoringModels(scoring_pb2.ListScoringModelsRequest(), metadata=md)
    states = {m.version: m.state for m in listed.models}
    assert states[challenger] == scoring_pb2.ScoringModel.STATE_RETIRED

    # Another tenant cannot borrow this tenant's version for its own experiment.
    other = metadata(token(tenant_id="borrower"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateScoringSettings(
            scoring_pb2.UpdateScoringSettingsRequest(
                settings=scoring_pb2.ScoringSettings(
                    grade_a_min_score=75,
                    grade_b_min_score=50,
                    grade_c_min_score=25,
                    score_ttl=settings.score_ttl,
                    challenger_version=challenger,
                    challenger_share=0.5,
                )
            ),
            metadata=other,
        )
    err = ServiceError.from_rpc_error(caught.value)
    assert [v.field for v in err.field_violations] == ["settings.challenger_version"]
