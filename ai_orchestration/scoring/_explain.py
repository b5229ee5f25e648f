"""From a model's raw numbers to what a salesperson reads: score, grade, confidence, factors.

Scores are ``round(100 * probability)``. A factor's *points* share out the distance between the
lead's score and the *base score* (the score of a lead the model knows nothing about, from the
TreeSHAP base value) in proportion to the features' contributions, so that the base score plus
every feature's points is the score (before rounding). Where the calibrator is flat around the
lead (the score equals the base score although the raw output differs) the local slope of the
logistic function converts log-odds to points instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ai_orchestration.scoring._features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    INDUSTRIES,
    LeadFeatures,
    LeadSource,
    Seniority,
    is_personal_email,
    normalise_industry,
)

FloatArray = npt.NDArray[np.float64]

MAX_FACTORS: Final[int] = 5
"""Positive and negative factors returned per score, each."""


@dataclass(frozen=True, slots=True)
class GradeCutoffs:
    """Lowest score of grades A, B and C; anything lower is D."""

    a: int = 75
    b: int = 50
    c: int = 25

    def __post_init__(self) -> None:
        if not 0 <= self.c < self.b < self.a <= 100:
            raise ValueError(f"grade cut-offs must satisfy 0 <= C < B < A <= 100, got {self}")

    def grade(self, score: int) -> str:
        """The letter grade of ``score``."""
        if score >= self.a:
            return "A"
        if score >= self.b:
            return "B"
        return "C" if score >= self.c else "D"


@dataclass(frozen=True, slots=True)
class Factor:
    """One feature's part in a score."""

    feature: str
    """Model feature name (one of :data:`FEATURES`)."""
    value: str
    """The lead's value as shown to people (``"unknown"`` when missing)."""
    contribution: float
    """Signed TreeSHAP contribution to the raw output (log-odds)."""
    points: int
    """Signed score points attributed to the feature."""
    reason: str
    """A sentence a salesperson understands, e.g. ``"Requested a demo (+18)"``."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Score, grade, confidence and factors of one lead."""

    score: int
    grade: str
    probability: float
    confidence: float
    positive: tuple[Factor, ...]
    negative: tuple[Factor, ...]


def to_score(probability: float) -> int:
    """The 0..100 score of a calibrated probability."""
    return min(100, max(0, round(100.0 * probability)))


def confidence_of(x: FloatArray, feature_ranges: FloatArray) -> FloatArray:
    """How far to trust each row's score, 0..1: the share of features the CRM knew, lowered by up
    to half for known numeric values outside the 1st..99th percentile of the training rows.

    ``x`` is a feature matrix (one row per lead); one vectorised pass for the whole batch.
    """
    present = ~np.isnan(x)
    numeric = np.ones(len(FEATURES), dtype=bool)
    numeric[list(CATEGORICAL_FEATURES)] = False
    checked = present & (numeric & ~np.isnan(feature_ranges[:, 0]))
    with np.errstate(invalid="ignore"):
        outside = checked & ((x < feature_ranges[:, 0]) | (x > feature_ranges[:, 1]))
    out_share = outside.sum(axis=1) / np.maximum(1, checked.sum(axis=1))
    confidence: FloatArray = np.round(present.mean(axis=1) * (1.0 - 0.5 * out_share), 3)
    return confidence


_SENIORITY_TEXT: Final[dict[Seniority, str]] = {
    Seniority.C_LEVEL: "C-level contact",
    Seniority.VP: "VP-level contact",
    Seniority.DIRECTOR: "Director-level contact",
    Seniority.MANAGER: "Manager-level contact",
    Seniority.IC: "Individual contributor contact",
}
_SOURCE_TEXT: Final[dict[LeadSource, str]] = {
    LeadSource.WEB: "Came in through the website",
    LeadSource.PAID: "Came from paid advertising",
    LeadSource.OUTBOUND: "Came from outbound prospecting",
    LeadSource.EVENT: "Met at an event",
    LeadSource.REFERRAL: "Was referred by someone",
}


def _times(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


def _describe_email(lead: LeadFeatures) -> tuple[str, str]:
    if lead.email is None:
        return "unknown", "E-mail address unknown"
    if is_personal_email(lead.email):
        return "personal", "Uses a personal e-mail address"
    return "business", "Uses a business e-mail address"


def _describe_size(lead: LeadFeatures) -> tuple[str, str]:
    if lead.employee_count is None:
        return "unknown", "Company size unknown"
    n = lead.employee_count
    return str(n), f"Company of {n:,} " + _times(n, "employee", "employees")


def _describe_seniority(lead: LeadFeatures) -> tuple[str, str]:
    if lead.seniority is None:
        return "unknown", "Seniority unknown"
    return lead.seniority.value, _SENIORITY_TEXT[lead.seniority]


def _describe_industry(lead: LeadFeatures) -> tuple[str, str]:
    if lead.industry is None or not lead.industry.strip():
        return "unknown", "Industry unknown"
    name = normalise_industry(lead.industry)
    if name == INDUSTRIES[-1]:
        return name, "Industry outside the known list"
    return name, f"Works in {name.replace('_', ' ')}"


def _describe_source(lead: LeadFeatures) -> tuple[str, str]:
    if lead.source is None:
        return "unknown", "Lead source unknown"
    return lead.source.value, _SOURCE_TEXT[lead.source]


def _describe_visits(lead: LeadFeatures) -> tuple[str, str]:
    if lead.page_visits is None:
        return "unknown", "Website visits unknown"
    n = lead.page_visits
    if n == 0:
        return "0", "No website visits in the last 30 days"
    return str(n), _times(n, "One website visit", "{n} website visits") + " in the last 30 days"


def _describe_pricing(lead: LeadFeatures) -> tuple[str, str]:
    if lead.pricing_page_visits is None:
        return "unknown", "Pricing page visits unknown"
    n = lead.pricing_page_visits
    if n == 0:
        return "0", "Has not viewed the pricing page"
    return str(n), "Viewed the pricing page " + _times(n, "once", "{n} times")


def _describe_demo(lead: LeadFeatures) -> tuple[str, str]:
    if lead.demo_requested is None:
        return "unknown", "Demo request unknown"
    if lead.demo_requested:
        return "yes", "Requested a demo"
    return "no", "Has not requested a demo"


def _describe_touch(lead: LeadFeatures) -> tuple[str, str]:
    if lead.days_since_last_touch is None:
        return "unknown", "Last touch unknown"
    n = lead.days_since_last_touch
    if n == 0:
        return "0", "Touched today"
    return str(n), "Last touched " + _times(n, "yesterday", "{n} days ago")


_DESCRIBE: Final[dict[str, Callable[[LeadFeatures], tuple[str, str]]]] = {
    "personal_email": _describe_email,
    "log_employee_count": _describe_size,
    "seniority_level": _describe_seniority,
    "industry": _describe_industry,
    "source": _describe_source,
    "page_visits": _describe_visits,
    "pricing_page_visits": _describe_pricing,
    "demo_requested": _describe_demo,
    "days_since_last_touch": _describe_touch,
}
assert tuple(_DESCRIBE) == FEATURES, "every feature needs a description"


def _points_per_logit(
    probability: float, base_probability: float, raw: float, base: float
) -> float:
    if abs(raw - base) > 1e-9:
        scale = 100.0 * (probability - base_probability) / (raw - base)
        if scale > 0.0:
            return scale
    slope = 1.0 / (1.0 + math.exp(-raw))
    return 100.0 * slope * (1.0 - slope)


def explain(
    lead: LeadFeatures,
    *,
    probability: float,
    raw: float,
    contributions: Sequence[float],
    base_probability: float,
    confidence: float,
    cutoffs: GradeCutoffs,
) -> Explanation:
    """Explains one scored lead; ``contributions`` is its row from the model, base value last."""
    score = to_score(probability)
    base = float(contributions[-1])
    scale = _points_per_logit(probability, base_probability, raw, base)
    factors: list[Factor] = []
    for index, name in enumerate(FEATURES):
        contribution = float(contributions[index])
        if contribution == 0.0:
            continue
        points = round(contribution * scale)
        value, phrase = _DESCRIBE[name](lead)
        factors.append(Factor(name, value, contribution, points, f"{phrase} ({points:+d})"))
    positive = sorted((f for f in factors if f.contribution > 0), key=lambda f: -f.contribution)
    negative = sorted((f for f in factors if f.contribution < 0), key=lambda f: f.contribution)
    return Explanation(
        score=score,
        grade=cutoffs.grade(score),
        probability=probability,
        confidence=confidence,
        positive=tuple(positive[:MAX_FACTORS]),
        negative=tuple(negative[:MAX_FACTORS]),
    )


def input_digest(lead_id: str, features: dict[str, object]) -> str:
    """SHA-256 (hex) of the canonical JSON of a lead's id and inputs, for the audit trail."""
    document = json.dumps(
        {"lead_id": lead_id, "features": features},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(document.encode()).hexdigest()


def experiment_arm(lead_id: str, challenger_share: float) -> str:
    """``"challenger"`` for a stable ``challenger_share`` of lead ids, else ``"control"``.

    The first 8 bytes of SHA-256 of the id, read as a fraction of 2**64, are compared with the
    share: the same lead always gets the same arm, on every replica and after restarts.
    """
    if challenger_share <= 0.0:
        return CONTROL_ARM
    fraction = int.from_bytes(hashlib.sha256(lead_id.encode()).digest()[:8], "big") / 2.0**64
    return CHALLENGER_ARM if fraction < challenger_share else CONTROL_ARM


CONTROL_ARM: Final[str] = "control"
"""Arm of leads scored by the champion (every lead when no experiment runs)."""
CHALLENGER_ARM: Final[str] = "challenger"
"""Arm of leads scored by the challenger of an A/B experiment."""
