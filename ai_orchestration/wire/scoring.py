"""Conversions between ``crm.ai.v1`` scoring messages and the scoring core's types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from crm.ai.v1 import scoring_pb2
from google.protobuf.duration_pb2 import Duration

from ai_orchestration.scoring import (
    LeadFeatures,
    LeadSource,
    ModelView,
    OutcomeRecord,
    ScoreRecord,
    ScoringSettings,
    Seniority,
    TrainingResult,
    TrainingStep,
)
from ai_orchestration.scoring import Loading as TrainingLoading
from ai_orchestration.storage import JsonValue
from ai_orchestration.wire.times import datetime_of, timestamp

__all__ = [
    "batch_response",
    "lead_features",
    "lead_message",
    "lead_outcome",
    "lead_score",
    "scoring_model",
    "settings_message",
    "training_event",
]

_SENIORITY: Final[dict[int, Seniority]] = {
    scoring_pb2.SENIORITY_INDIVIDUAL_CONTRIBUTOR: Seniority.IC,
    scoring_pb2.SENIORITY_MANAGER: Seniority.MANAGER,
    scoring_pb2.SENIORITY_DIRECTOR: Seniority.DIRECTOR,
    scoring_pb2.SENIORITY_VP: Seniority.VP,
    scoring_pb2.SENIORITY_C_LEVEL: Seniority.C_LEVEL,
}
_SOURCE: Final[dict[int, LeadSource]] = {
    scoring_pb2.LEAD_SOURCE_WEB: LeadSource.WEB,
    scoring_pb2.LEAD_SOURCE_PAID: LeadSource.PAID,
    scoring_pb2.LEAD_SOURCE_OUTBOUND: LeadSource.OUTBOUND,
    scoring_pb2.LEAD_SOURCE_EVENT: LeadSource.EVENT,
    scoring_pb2.LEAD_SOURCE_REFERRAL: LeadSource.REFERRAL,
}
_GRADE: Final[dict[str, int]] = {
    "A": scoring_pb2.GRADE_A,
    "B": scoring_pb2.GRADE_B,
    "C": scoring_pb2.GRADE_C,
    "D": scoring_pb2.GRADE_D,
}
_MODEL_STATE: Final[dict[str, int]] = {
    "candidate": scoring_pb2.ScoringModel.STATE_CANDIDATE,
    "published": scoring_pb2.ScoringModel.STATE_PUBLISHED,
    "retired": scoring_pb2.ScoringModel.STATE_RETIRED,
    "rejected": scoring_pb2.ScoringModel.STATE_REJECTED,
}
_STAGE: Final[dict[str, int]] = {
    "fitting": scoring_pb2.TrainingProgress.STAGE_FITTING,
    "calibrating": scoring_pb2.TrainingProgress.STAGE_CALIBRATING,
    "evaluating": scoring_pb2.TrainingProgress.STAGE_EVALUATING,
}


def _text(value: str) -> str | None:
    return value if value and not value.isspace() else None


def lead_features(lead: scoring_pb2.Lead) -> LeadFeatures:
    """A validated ``Lead`` as the model sees it; unset fields are unknown (``None``): optional
    numbers not present, blank strings, ``UNSPECIFIED`` enums and no ``create_time``."""
    # One attribute read per field: this runs for every lead of a batch, and walking
    # ListFields() cost three times as much.
    has = lead.HasField
    return LeadFeatures(
        email=_text(lead.email),
        company_name=_text(lead.company_name),
        industry=_text(lead.industry),
        employee_count=lead.employee_count if has("employee_count") else None,
        seniority=_SENIORITY.get(lead.seniority),
        source=_SOURCE.get(lead.source),
        page_visits=lead.page_visits if has("page_visits") else None,
        pricing_page_visits=lead.pricing_page_visits if has("pricing_page_visits") else None,
        demo_requested=lead.demo_requested if has("demo_requested") else None,
        days_since_last_touch=(
            lead.days_since_last_touch if has("days_since_last_touch") else None
        ),
        country=_text(lead.country),
        job_title=_text(lead.job_title),
        estimated_deal_value=(lead.estimated_deal_value if has("estimated_deal_value") else None),
        create_time=datetime_of(lead.create_time) if has("create_time") else None,
    )


_SENIORITY_VALUE: Final[dict[Seniority, int]] = {v: k for k, v in _SENIORITY.items()}
_SOURCE_VALUE: Final[dict[LeadSource, int]] = {v: k for k, v in _SOURCE.items()}
_TEXT_FIELDS: Final[tuple[str, ...]] = ("email", "company_name", "industry", "country", "job_title")
_OPTIONAL_FIELDS: Final[tuple[str, ...]] = (
    "employee_count",
    "page_visits",
    "pricing_page_visits",
    "demo_requested",
    "days_since_last_touch",
    "estimated_deal_value",
)


def lead_message(lead_id: str, lead: LeadFeatures) -> scoring_pb2.Lead:
    """The ``Lead`` message for ``lead`` (unknown fields left unset): the inverse of
    :func:`lead_features`, for clients, tests and benchmarks that start from features."""
    message = scoring_pb2.Lead(lead_id=lead_id)
    for name in (*_TEXT_FIELDS, *_OPTIONAL_FIELDS):
        if (value := getattr(lead, name)) is not None:
            setattr(message, name, value)
    if lead.seniority is not None:
        message.seniority = _SENIORITY_VALUE[lead.seniority]  # type: ignore[assignment]
    if lead.source is not None:
        message.source = _SOURCE_VALUE[lead.source]  # type: ignore[assignment]
    if lead.create_time is not None:
        message.create_time.CopyFrom(timestamp(lead.create_time))
    return message


def _factor(document: dict[str, JsonValue]) -> scoring_pb2.ScoreFactor:
    try:  # as the scorer writes them: the message's own fields, no conversion needed
        return scoring_pb2.ScoreFactor(**document)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass  # a row written by another version: convert field by field
    contribution = document.get("contribution", 0.0)
    points = document.get("points", 0)
    return scoring_pb2.ScoreFactor(
        feature=str(document.get("feature", "")),
        value=str(document.get("value", "")),
        contribution=float(contribution) if isinstance(contribution, int | float) else 0.0,
        points=int(points) if isinstance(points, int | float) else 0,
        reason=str(document.get("reason", "")),
    )


def _stamp(value: datetime) -> dict[str, int]:
    """A ``Timestamp`` as the constructor's dict form: handing it a message costs a copy."""
    stamp = timestamp(value)
    return {"seconds": stamp.seconds, "nanos": stamp.nanos}


def lead_score(
    record: ScoreRecord,
    stamps: dict[datetime, dict[str, int]] | None = None,
    build: Callable[..., scoring_pb2.LeadScore] = scoring_pb2.LeadScore,
) -> scoring_pb2.LeadScore:
    """The ``LeadScore`` of a stored score, made by ``build`` (the message class, or ``add`` of
    a repeated field to build it in place). ``stamps`` memoises timestamps across the records
    of a batch, which share their score and expiry times."""
    if stamps is None:
        stamps = {}
    if (scored := stamps.get(record.scored_at)) is None:
        scored = stamps[record.scored_at] = _stamp(record.scored_at)
    if (expires := stamps.get(record.expires_at)) is None:
        expires = stamps[record.expires_at] = _stamp(record.expires_at)
    try:
        # The factor documents have exactly ScoreFactor's fields, and the constructor takes
        # such dicts as they are: half the cost of building a ScoreFactor each.
        return _lead_score(
            build, record, scored, expires, record.positive_factors, record.negative_factors
        )
    except (TypeError, ValueError):  # a row written by another version: convert each factor
        return _lead_score(
            build,
            record,
            scored,
            expires,
            [_factor(f) for f in record.positive_factors],
            [_factor(f) for f in record.negative_factors],
        )


def _lead_score(  # noqa: PLR0917 - the parts lead_score resolved, in one place
    build: Callable[..., scoring_pb2.LeadScore],
    record: ScoreRecord,
    scored: dict[str, int],
    expires: dict[str, int],
    positive: Sequence[Any],
    negative: Sequence[Any],
) -> scoring_pb2.LeadScore:
    # One constructor call, no intermediate dict: this runs for every lead of a batch. A call
    # that raises adds nothing, not even through a repeated field's ``add``.
    return build(
        score_id=record.score_id,
        lead_id=record.lead_id,
        score=record.score,
        grade=_GRADE.get(record.grade, scoring_pb2.GRADE_UNSPECIFIED),
        probability=record.probability,
        confidence=record.confidence,
        positive_factors=positive,
        negative_factors=negative,
        model_version=record.model_version,
        experiment_arm=record.experiment_arm,
        score_time=scored,
        expire_time=expires,
        input_digest=record.input_digest,
    )


def batch_response(
    records: Sequence[ScoreRecord], first_index: int
) -> scoring_pb2.BatchScoreLeadsResponse:
    """One ``BatchScoreLeadsResponse`` chunk of consecutive scores, each built in place
    (building them apart and handing over the list copied every message)."""
    response = scoring_pb2.BatchScoreLeadsResponse(first_index=first_index)
    stamps: dict[datetime, dict[str, int]] = {}
    add = response.scores.add
    for record in records:
        lead_score(record, stamps, add)
    return response


def lead_outcome(record: OutcomeRecord) -> scoring_pb2.LeadOutcome:
    """The ``LeadOutcome`` of a stored outcome."""
    return scoring_pb2.LeadOutcome(
        outcome_id=record.outcome_id,
        lead_id=record.lead_id,
        outcome=(
            scoring_pb2.LeadOutcome.OUTCOME_CONVERTED
            if record.converted
            else scoring_pb2.LeadOutcome.OUTCOME_DISQUALIFIED
        ),
        outcome_time=timestamp(record.outcome_time),
        record_time=timestamp(record.recorded_at),
    )


def _number(metrics: dict[str, JsonValue], key: str) -> float:
    value = metrics.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def scoring_model(view: ModelView) -> scoring_pb2.ScoringModel:
    """The ``ScoringModel`` of a version as the tenant sees it."""
    stored, metrics = view.stored, view.stored.metrics
    message = scoring_pb2.ScoringModel(
        version=stored.version,
        state=_MODEL_STATE[view.state],  # type: ignore[arg-type]
        metrics=scoring_pb2.ModelMetrics(
            auc=_number(metrics, "auc"),
            brier_score=_number(metrics, "brier"),
            conversion_rate=_number(metrics, "conversion_rate"),
            training_rows=int(_number(metrics, "training_rows")),
            test_rows=int(_number(metrics, "test_rows")),
        ),
        features=list(stored.features),
        train_time=timestamp(stored.trained_at),
        traffic_share=view.traffic_share,
        arm_performance=[
            scoring_pb2.ArmPerformance(
                arm=arm.arm,
                scored_leads=arm.scored_leads,
                outcomes=arm.outcomes,
                conversion_rate=arm.conversion_rate,
                auc=arm.auc,
            )
            for arm in view.arms
        ],
    )
    setattr(message, "global", stored.is_global)  # `global` is a Python keyword
    return message


def settings_message(settings: ScoringSettings) -> scoring_pb2.ScoringSettings:
    """The ``ScoringSettings`` message of a tenant's settings."""
    ttl = Duration()
    ttl.FromTimedelta(settings.score_ttl)
    return scoring_pb2.ScoringSettings(
        grade_a_min_score=settings.cutoffs.a,
        grade_b_min_score=settings.cutoffs.b,
        grade_c_min_score=settings.cutoffs.c,
        score_ttl=ttl,
        challenger_version=settings.challenger_version,
        challenger_share=settings.challenger_share,
        champion_version=settings.champion_version,
    )


def training_event(
    event: TrainingLoading | TrainingStep | TrainingResult, view: ModelView | None = None
) -> scoring_pb2.TrainScoringModelEvent:
    """The stream event of a training progress report or result (``view`` for the result)."""
    if isinstance(event, TrainingLoading):
        return scoring_pb2.TrainScoringModelEvent(
            progress=scoring_pb2.TrainingProgress(
                stage=scoring_pb2.TrainingProgress.STAGE_LOADING,
                rows=event.tenant_rows + event.global_rows,
                message=event.message,
            )
        )
    if isinstance(event, TrainingStep):
        return scoring_pb2.TrainScoringModelEvent(
            progress=scoring_pb2.TrainingProgress(
                stage=_STAGE[event.stage],  # type: ignore[arg-type]
                fold=event.fold,
                folds=event.folds,
                auc=event.auc or 0.0,
                message=event.message,
            )
        )
    if view is None:
        raise ValueError("a training result needs its model view")
    return scoring_pb2.TrainScoringModelEvent(
        result=scoring_pb2.TrainingResult(
            model=scoring_model(view),
            published=event.published,
            reason=event.reason,
            previous_auc=event.previous_auc,
        )
    )
