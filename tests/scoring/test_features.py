"""The feature matrix: column order, missing values, vocabularies."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from ai_orchestration import scoring
from ai_orchestration.scoring import (
    CATEGORICAL_FEATURES,
    FEATURES,
    INDUSTRIES,
    LeadFeatures,
    LeadSource,
    Seniority,
    is_personal_email,
    normalise_industry,
    to_matrix,
)


def test_exports_are_sorted_and_resolve() -> None:
    assert scoring.__all__ == sorted(scoring.__all__, key=lambda n: (not n.isupper(), n))
    for name in scoring.__all__:
        assert getattr(scoring, name) is not None


def test_scoring_core_does_not_import_grpc() -> None:
    # A fresh interpreter: this test process has long imported grpc for other tests.
    code = (
        "import sys, ai_orchestration.scoring; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'crm', 'google')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_full_lead() -> None:
    lead = LeadFeatures(
        email="Jane@GMAIL.com",
        industry=" Financial Services ",
        employee_count=1000,
        seniority=Seniority.VP,
        source=LeadSource.REFERRAL,
        page_visits=4,
        pricing_page_visits=1,
        demo_requested=True,
        days_since_last_touch=3,
    )
    row = dict(zip(FEATURES, to_matrix([lead])[0].tolist(), strict=True))
    assert row == {
        "personal_email": 1.0,
        "log_employee_count": pytest.approx(math.log(1000)),
        "seniority_level": 3.0,
        "industry": float(INDUSTRIES.index("financial_services")),
        "source": 4.0,
        "page_visits": 4.0,
        "pricing_page_visits": 1.0,
        "demo_requested": 1.0,
        "days_since_last_touch": 3.0,
    }


def test_missing_fields_are_nan() -> None:
    matrix = to_matrix([LeadFeatures()])
    assert matrix.shape == (1, len(FEATURES))
    assert matrix.dtype == np.float64
    assert np.isnan(matrix).all()


def test_business_email_and_unknown_industry() -> None:
    row = to_matrix([LeadFeatures(email="a@acme.io", industry="Space Mining")])[0]
    assert row[FEATURES.index("personal_email")] == 0.0
    assert row[FEATURES.index("industry")] == INDUSTRIES.index("other")
    assert normalise_industry("space mining") == "other"
    assert normalise_industry("Professional-Services") == "professional_services"


def test_demo_not_requested_is_zero_not_missing() -> None:
    row = to_matrix([LeadFeatures(demo_requested=False)])[0]
    assert row[FEATURES.index("demo_requested")] == 0.0


@pytest.mark.parametrize(
    ("email", "personal"),
    [("x@proton.me", True), ("x@web.de", True), ("x@mail.ru", True), ("x@corp.de", False)],
)
def test_personal_email(email: str, personal: bool) -> None:
    assert is_personal_email(email) is personal


def test_categorical_indices() -> None:
    assert [FEATURES[i] for i in CATEGORICAL_FEATURES] == ["industry", "source"]
