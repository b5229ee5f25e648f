"""Scores, grades, factor sentences, confidence and the A/B split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.scoring import (
    CHALLENGER_ARM,
    CONTROL_ARM,
    Explanation,
    GradeCutoffs,
    LeadFeatures,
    LeadSource,
    Seniority,
    checked_settings,
    confidence_of,
    experiment_arm,
    explain,
    features_from_json,
    features_to_json,
    input_digest,
    to_matrix,
    to_score,
)
from ai_orchestration.scoring._settings import DEFAULT_TTL
from tests.scoring.conftest import Trained

HOT = LeadFeatures(
    email="cto@bigco.example",
    employee_count=1200,
    seniority=Seniority.C_LEVEL,
    source=LeadSource.REFERRAL,
    industry="Software",
    page_visits=14,
    pricing_page_visits=3,
    demo_requested=True,
    days_since_last_touch=1,
)
COLD = LeadFeatures(
    email="someone@gmail.com",
    employee_count=3,
    seniority=Seniority.IC,
    source=LeadSource.OUTBOUND,
    industry="government",
    page_visits=0,
    pricing_page_visits=0,
    demo_requested=False,
    days_since_last_touch=80,
)


def _explain(trained: Trained, lead: LeadFeatures) -> tuple[Explanation, float]:
    x = to_matrix([lead])
    probability, raw, contributions = trained.model.predict(x)
    base = float(contributions[0, -1])
    base_probability = float(trained.model.calibrator(np.array([base]))[0])
    return explain(
        lead,
        probability=float(probability[0]),
        raw=float(raw[0]),
        contributions=contributions[0],
        base_probability=base_probability,
        confidence=float(confidence_of(x, trained.model.feature_ranges)[0]),
        cutoffs=GradeCutoffs(),
    ), base_probability


@pytest.mark.parametrize(
    ("score", "grade"),
    [(100, "A"), (75, "A"), (74, "B"), (50, "B"), (49, "C"), (25, "C"), (0, "D")],
)
def test_default_grade_cutoffs(score: int, grade: str) -> None:
    assert GradeCutoffs().grade(score) == grade


def test_custom_cutoffs_and_their_order() -> None:
    cutoffs = GradeCutoffs(a=90, b=60, c=10)
    assert [cutoffs.grade(s) for s in (95, 89, 59, 9)] == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="C < B < A"):
        GradeCutoffs(a=50, b=60, c=10)


def test_score_is_the_rounded_percentage() -> None:
    assert [to_score(p) for p in (0.0, 0.004, 0.505, 0.996, 1.0)] == [0, 0, 50, 100, 100]


def test_hot_lead_is_explained_by_its_demo_and_seniority(trained: Trained) -> None:
    explanation, _ = _explain(trained, HOT)
    assert explanation.grade in {"A", "B"}
    positive = [f.feature for f in explanation.positive]
    assert {"demo_requested", "seniority_level"} <= set(positive[:3])
    demo = next(f for f in explanation.positive if f.feature == "demo_requested")
    assert demo.value == "yes"
    assert demo.points > 0
    assert demo.reason == f"Requested a demo (+{demo.points})"
    assert len(explanation.positive) <= 5 and len(explanation.negative) <= 5
    contributions = [f.contribution for f in explanation.positive]
    assert contributions == sorted(contributions, reverse=True)


def test_cold_lead_is_explained_by_what_it_lacks(trained: Trained) -> None:
    explanation, _ = _explain(trained, COLD)
    assert explanation.grade == "D"
    negative = {f.feature: f for f in explanation.negative}
    assert "personal_email" in negative
    assert negative["days_since_last_touch"].reason.startswith("Last touched 80 days ago (-")
    assert negative["personal_email"].reason.startswith("Uses a personal e-mail address (-")
    contributions = [f.contribution for f in explanation.negative]
    assert contributions == sorted(contributions)


def test_points_add_up_to_the_distance_from_the_base_score(trained: Trained) -> None:
    explanation, base_probability = _explain(trained, HOT)
    _, raw, contributions = trained.model.predict(to_matrix([HOT]))
    demo = explanation.positive[0]
    assert demo.feature == "demo_requested"
    points_per_logit = demo.points / demo.contribution  # one scale for every feature
    all_points = points_per_logit * (raw[0] - contributions[0, -1])
    expected = 100 * (explanation.probability - base_probability)
    assert all_points == pytest.approx(expected, abs=0.02 * abs(expected) + 1)
    for factor in [*explanation.positive, *explanation.negative]:
        assert (
            factor.points == round(factor.contribution * points_per_logit)
            or abs(factor.points - factor.contribution * points_per_logit) <= 1
        )


def test_missing_values_lower_confidence(trained: Trained) -> None:
    full, _ = _explain(trained, HOT)
    sparse, _ = _explain(trained, LeadFeatures(demo_requested=True))
    nothing, _ = _explain(trained, LeadFeatures())
    assert 0.0 <= nothing.confidence < sparse.confidence < full.confidence <= 1.0
    assert nothing.confidence == 0.0


def test_out_of_range_values_lower_confidence(trained: Trained) -> None:
    usual, _ = _explain(trained, HOT)
    extreme, _ = _explain(
        trained, dataclasses.replace(HOT, employee_count=9_000_000, page_visits=900_000)
    )
    assert extreme.confidence < usual.confidence


def test_experiment_split_is_within_two_points_of_the_share() -> None:
    arms = [experiment_arm(f"lead-{i}", 0.3) for i in range(10_000)]
    share = arms.count(CHALLENGER_ARM) / len(arms)
    assert abs(share - 0.3) <= 0.02
    assert experiment_arm("lead-42", 0.3) == arms[42]  # deterministic
    assert {experiment_arm(f"lead-{i}", 0.0) for i in range(100)} == {CONTROL_ARM}


def test_features_json_round_trip_and_digest() -> None:
    assert features_from_json(features_to_json(HOT)) == HOT
    document = features_to_json(HOT)
    assert input_digest("L-1", document) == input_digest("L-1", dict(reversed(document.items())))
    assert input_digest("L-1", document) != input_digest("L-2", document)
    assert len(input_digest("L-1", document)) == 64


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        checked_settings(
            grade_a=50,
            grade_b=60,
            grade_c=10,
            score_ttl=DEFAULT_TTL * 400,
            champion_version="",
            challenger_version="v1",
            challenger_share=0.0,
            field_prefix="settings.",
        )
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "settings.grade_b_min_score",
        "settings.score_ttl",
        "settings.challenger_version",
    }
