"""The Lead message mapping is lossless both ways."""

from __future__ import annotations

from datetime import UTC, datetime

from crm.ai.v1 import scoring_pb2

from ai_orchestration.scoring import LeadFeatures, ScoreRecord, generate_leads
from ai_orchestration.storage import JsonValue
from ai_orchestration.wire.scoring import lead_features, lead_message, lead_score


def test_features_survive_a_round_trip_through_the_message() -> None:
    leads = [*generate_leads(500, seed=13).leads, LeadFeatures()]
    assert [lead_features(lead_message(f"L-{i}", x)) for i, x in enumerate(leads)] == leads


def test_unknown_fields_stay_unset() -> None:
    message = lead_message("L-1", LeadFeatures(demo_requested=False))
    assert message.HasField("demo_requested") and not message.demo_requested
    assert not message.HasField("page_visits") and not message.HasField("create_time")


def _record(positive: list[dict[str, JsonValue]]) -> ScoreRecord:
    now = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return ScoreRecord(
        score_id="s-1",
        lead_id="L-1",
        score=61,
        grade="B",
        probability=0.61,
        confidence=0.9,
        positive_factors=positive,
        negative_factors=[],
        model_version="v1",
        experiment_arm="control",
        scored_at=now,
        expires_at=now,
        input_digest="d" * 64,
        features={},
    )


def test_a_stored_score_becomes_a_lead_score() -> None:
    factor: dict[str, JsonValue] = {
        "feature": "demo_requested",
        "value": "yes",
        "contribution": 0.61,
        "points": 18,
        "reason": "Requested a demo (+18)",
    }
    message = lead_score(_record([factor]))
    assert message.grade == scoring_pb2.GRADE_B
    assert message.score_time.ToDatetime(tzinfo=UTC) == datetime(
        2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC
    )
    assert [
        (f.feature, f.value, f.contribution, f.points, f.reason) for f in message.positive_factors
    ] == [("demo_requested", "yes", 0.61, 18, "Requested a demo (+18)")]


def test_factors_written_by_another_version_are_converted_field_by_field() -> None:
    older: list[dict[str, JsonValue]] = [
        {"feature": "visits", "value": 12, "points": 4.0, "impact": 0.4},
        {"feature": "email", "contribution": "n/a"},
    ]
    message = lead_score(_record(older))
    assert [(f.feature, f.value, f.points, f.contribution) for f in message.positive_factors] == [
        ("visits", "12", 4, 0.0),
        ("email", "", 0, 0.0),
    ]
