"""From a model's raw numbers to what a salesperson reads: score, grade, confidence, factors.

Scores are ``round(100 * probability)``. A factor's *points* share out the distance between the
lead's score and the *base score* (the score of a lead the model knows nothing about, from the
TreeSHAP base value) in proportion to the features' contributions, so that the base score plus
every feature's points is the score (before rounding). Where the calibrator is flat around the
lead (the score equals the base score although the raw output differs) the local slope of the
logistic function converts log-odds to points instead.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from ai_orchestration._dataclasses import frozen_record
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
    """The 0..100 score of a calibrated probability (half to even, as numpy's ``rint``)."""
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


# Each description reads one field of the lead. Values repeat a lot across leads (seniorities,
# sources, small counts), so descriptions are memoised: building the sentences cost more than
# the TreeSHAP contributions they explain. E-mail addresses are unique, so they are not.
Description = tuple[str, str]


def _describe_email(email: str | None) -> Description:
    if email is None:
        return "unknown", "E-mail address unknown"
    if is_personal_email(email):
        return "personal", "Uses a personal e-mail address"
    return "business", "Uses a business e-mail address"


@functools.lru_cache(maxsize=4096)
def _describe_size(n: int | None) -> Description:
    if n is None:
        return "unknown", "Company size unknown"
    return str(n), f"Company of {n:,} " + _times(n, "employee", "employees")


@functools.lru_cache(maxsize=64)
def _describe_seniority(seniority: Seniority | None) -> Description:
    if seniority is None:
        return "unknown", "Seniority unknown"
    return seniority.value, _SENIORITY_TEXT[seniority]


@functools.lru_cache(maxsize=1024)
def _describe_industry(industry: str | None) -> Description:
    if industry is None or not industry.strip():
        return "unknown", "Industry unknown"
    name = normalise_industry(industry)
    if name == INDUSTRIES[-1]:
        return name, "Industry outside the known list"
    return name, f"Works in {name.replace('_', ' ')}"


@functools.lru_cache(maxsize=64)
def _describe_source(source: LeadSource | None) -> Description:
    if source is None:
        return "unknown", "Lead source unknown"
    return source.value, _SOURCE_TEXT[source]


@functools.lru_cache(maxsize=4096)
def _describe_visits(n: int | None) -> Description:
    if n is None:
        return "unknown", "Website visits unknown"
    if n == 0:
        return "0", "No website visits in the last 30 days"
    return str(n), _times(n, "One website visit", "{n} website visits") + " in the last 30 days"


@functools.lru_cache(maxsize=4096)
def _describe_pricing(n: int | None) -> Description:
    if n is None:
        return "unknown", "Pricing page visits unknown"
    if n == 0:
        return "0", "Has not viewed the pricing page"
    return str(n), "Viewed the pricing page " + _times(n, "once", "{n} times")


@functools.lru_cache(maxsize=4)
def _describe_demo(requested: bool | None) -> Description:
    if requested is None:
        return "unknown", "Demo request unknown"
    if requested:
        return "yes", "Requested a demo"
    return "no", "Has not requested a demo"


@functools.lru_cache(maxsize=4096)
def _describe_touch(n: int | None) -> Description:
    if n is None:
        return "unknown", "Last touch unknown"
    if n == 0:
        return "0", "Touched today"
    return str(n), "Last touched " + _times(n, "yesterday", "{n} days ago")


_DESCRIBE: Final[dict[str, tuple[str, Callable[[Any], Description]]]] = {
    "personal_email": ("email", _describe_email),
    "log_employee_count": ("employee_count", _describe_size),
    "seniority_level": ("seniority", _describe_seniority),
    "industry": ("industry", _describe_industry),
    "source": ("source", _describe_source),
    "page_visits": ("page_visits", _describe_visits),
    "pricing_page_visits": ("pricing_page_visits", _describe_pricing),
    "demo_requested": ("demo_requested", _describe_demo),
    "days_since_last_touch": ("days_since_last_touch", _describe_touch),
}
"""Per model feature: the :class:`LeadFeatures` field it comes from and its description."""
assert tuple(_DESCRIBE) == FEATURES, "every feature needs a description"
_Describer = tuple[Callable[[LeadFeatures], Any], Callable[[Any], Description]]
_DESCRIBERS: Final[tuple[_Describer, ...]] = tuple(
    (operator.attrgetter(field), describe) for field, describe in _DESCRIBE.values()
)
"""Per model feature, in :data:`FEATURES` order: how to read its field, how to describe it."""


FactorDocument = dict[str, Any]
"""A factor as stored and sent: ``feature``, ``value``, ``contribution``, ``points``, ``reason``
(the fields of :class:`Factor`)."""


@frozen_record
class ExplainedRow:
    """Score, grade and factors of one lead of a batch (factors as documents, for storage)."""

    score: int
    grade: str
    positive: list[FactorDocument]
    negative: list[FactorDocument]


def _points_per_logit(
    probabilities: FloatArray, base_probability: float, raws: FloatArray, bases: FloatArray
) -> FloatArray:
    """Score points per unit of log-odds, per row: the calibrated score's distance from the base
    score over the raw distance, or the logistic slope where that is not positive."""
    distance = raws - bases
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 100.0 * (probabilities - base_probability) / distance
    slope = 1.0 / (1.0 + np.exp(-raws))
    usable = (np.abs(distance) > 1e-9) & (scale > 0.0)
    result: FloatArray = np.where(usable, scale, 100.0 * slope * (1.0 - slope))
    return result


def explain_batch(
    leads: Sequence[LeadFeatures],
    *,
    probabilities: FloatArray,
    raws: FloatArray,
    contributions: FloatArray,
    base_probability: float,
    cutoffs: GradeCutoffs,
) -> list[ExplainedRow]:
    """Explains a batch of scored leads; ``contributions`` has one row per lead, base value last.

    Points and the order of the factors are computed for the whole batch with numpy; the
    per-lead Python work is only building the (at most ``2 * MAX_FACTORS``) factor documents.
    """
    features = contributions[:, :-1]
    scale = _points_per_logit(probabilities, base_probability, raws, contributions[:, -1])
    points = np.rint(features * scale[:, None]).astype(np.int64)
    scores = np.clip(np.rint(100.0 * probabilities), 0, 100).astype(np.int64).tolist()
    # Every feature of every lead described column by column (map over memoised describers
    # runs in C); the factors of the whole batch are then built in one comprehension per sign.
    described = [list(map(describe, map(read, leads))) for read, describe in _DESCRIBERS]
    descending = np.argsort(-features, axis=1, kind="stable")
    positive = _factors(descending, features, features > 0.0, points, described)
    negative = _factors(
        np.argsort(features, axis=1, kind="stable"), features, features < 0.0, points, described
    )
    return [
        ExplainedRow(score, cutoffs.grade(score), up, down)
        for score, up, down in zip(scores, positive, negative, strict=True)
    ]


@functools.lru_cache(maxsize=16_384)
def _reason(phrase: str, points: int) -> str:
    """A factor's sentence; memoised because sentences repeat across leads (a cache hit costs
    less than half of formatting one)."""
    return f"{phrase} ({points:+d})"


def _factors(
    order: npt.NDArray[np.intp],
    contributions: FloatArray,
    wanted: npt.NDArray[np.bool_],
    points: npt.NDArray[np.int64],
    described: list[list[Description]],
) -> list[list[FactorDocument]]:
    """Each lead's factor documents, at most :data:`MAX_FACTORS`, strongest first: the first
    columns in its row of ``order`` that are ``wanted`` (contributions of one sign)."""
    top = order[:, :MAX_FACTORS]
    rows = np.arange(len(top))[:, None]
    keep = wanted[rows, top]  # a prefix of each row: the order is by strength
    lead, rank = np.nonzero(keep)  # row-major: grouped by lead, strongest first
    column = top[lead, rank]
    contribution = contributions[lead, column].tolist()
    documents: list[FactorDocument] = [
        {
            "feature": FEATURES[c],
            "value": value,
            "contribution": v,
            "points": p,
            "reason": _reason(phrase, p),
        }
        for r, c, v, p in zip(
            lead.tolist(), column.tolist(), contribution, points[lead, column].tolist(), strict=True
        )
        for value, phrase in (described[c][r],)
    ]
    ends = np.cumsum(keep.sum(axis=1)).tolist()
    return [documents[start:end] for start, end in zip([0, *ends], ends, strict=False)]


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
    (row,) = explain_batch(
        [lead],
        probabilities=np.array([probability]),
        raws=np.array([raw]),
        contributions=np.asarray([contributions], dtype=np.float64),
        base_probability=base_probability,
        cutoffs=cutoffs,
    )
    return Explanation(
        score=row.score,
        grade=row.grade,
        probability=probability,
        confidence=confidence,
        positive=tuple(Factor(**document) for document in row.positive),
        negative=tuple(Factor(**document) for document in row.negative),
    )


def input_digest(lead_id: str, features: dict[str, object]) -> str:
    """SHA-256 (hex) of the canonical JSON of a lead's id and inputs, for the audit trail:
    UTF-8, sorted keys, no whitespace (orjson's canonical form)."""
    document = orjson.dumps({"lead_id": lead_id, "features": features}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(document).hexdigest()


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
