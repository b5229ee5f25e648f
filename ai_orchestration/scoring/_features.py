"""Lead features as plain Python values and their conversion to the model's feature matrix.

The scoring core never sees protobuf messages: the gRPC adapter maps a ``Lead`` message onto
:class:`LeadFeatures` (unset fields become ``None``) and everything below works on that.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from ai_orchestration._dataclasses import frozen_record


class Seniority(StrEnum):
    """Seniority of the lead's contact (mirrors ``crm.ai.v1.Seniority``)."""

    IC = "ic"
    MANAGER = "manager"
    DIRECTOR = "director"
    VP = "vp"
    C_LEVEL = "c_level"


class LeadSource(StrEnum):
    """Channel through which the lead arrived (mirrors ``crm.ai.v1.LeadSource``)."""

    WEB = "web"
    PAID = "paid"
    OUTBOUND = "outbound"
    EVENT = "event"
    REFERRAL = "referral"


@frozen_record
class LeadFeatures:
    """One lead as the model sees it; ``None`` means the CRM does not know the value."""

    email: str | None = None
    """Contact e-mail address; only its domain is used (personal vs business)."""
    company_name: str | None = None
    """Company name (kept for display; not a model feature)."""
    industry: str | None = None
    """Industry as free text; normalised onto :data:`INDUSTRIES`."""
    employee_count: int | None = None
    """Number of employees of the company."""
    seniority: Seniority | None = None
    """Seniority of the contact."""
    source: LeadSource | None = None
    """Where the lead came from."""
    page_visits: int | None = None
    """Website page visits in the last 30 days."""
    pricing_page_visits: int | None = None
    """Pricing page visits in the last 30 days."""
    demo_requested: bool | None = None
    """Whether the lead requested a demo."""
    days_since_last_touch: int | None = None
    """Days since the last touch by either side."""
    country: str | None = None
    """ISO 3166-1 alpha-2 country code (not a model feature yet)."""
    job_title: str | None = None
    """Contact job title (not a model feature; seniority carries its signal)."""
    estimated_deal_value: float | None = None
    """Estimated deal value in the tenant's currency (not a model feature: sales often fills it
    in after qualification, so it would leak the outcome)."""
    create_time: datetime | None = None
    """When the lead was created in the CRM; used to split training data by time."""


PERSONAL_EMAIL_DOMAINS: Final[frozenset[str]] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
    }
)
"""Free-mail domains: an address there says nothing about the lead's company."""

INDUSTRIES: Final[tuple[str, ...]] = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "professional_services",
    "education",
    "media",
    "telecommunications",
    "government",
    "other",
)
"""Industry vocabulary; the code of an industry is its index. Never reorder: trained models
depend on the codes. Unknown industries map to ``other``."""

SOURCES: Final[tuple[LeadSource, ...]] = tuple(LeadSource)
"""Lead source vocabulary; the code of a source is its index (never reorder)."""

SENIORITY_LEVELS: Final[dict[Seniority, int]] = {
    Seniority.IC: 0,
    Seniority.MANAGER: 1,
    Seniority.DIRECTOR: 2,
    Seniority.VP: 3,
    Seniority.C_LEVEL: 4,
}
"""Ordinal level of each seniority: an ordered number lets trees split "director or above"."""

FEATURES: Final[tuple[str, ...]] = (
    "personal_email",
    "log_employee_count",
    "seniority_level",
    "industry",
    "source",
    "page_visits",
    "pricing_page_visits",
    "demo_requested",
    "days_since_last_touch",
)
"""Model feature names, in column order of :func:`to_matrix`."""

CATEGORICAL_FEATURES: Final[tuple[int, ...]] = (
    FEATURES.index("industry"),
    FEATURES.index("source"),
)
"""Column indices LightGBM must treat as categorical codes rather than numbers."""

_INDUSTRY_CODES: Final[dict[str, int]] = {name: code for code, name in enumerate(INDUSTRIES)}
_SOURCE_CODES: Final[dict[LeadSource, int]] = {source: code for code, source in enumerate(SOURCES)}
_OTHER_INDUSTRY: Final[int] = _INDUSTRY_CODES["other"]
_NAN: Final[float] = math.nan


def normalise_industry(industry: str) -> str:
    """Returns the vocabulary spelling of ``industry`` (``"Financial Services"`` →
    ``"financial_services"``), or ``"other"`` when it is not in :data:`INDUSTRIES`."""
    key = industry.strip().lower().replace("-", "_").replace(" ", "_")
    return key if key in _INDUSTRY_CODES else INDUSTRIES[_OTHER_INDUSTRY]


def is_personal_email(email: str) -> bool:
    """Whether ``email`` is at a free-mail domain of :data:`PERSONAL_EMAIL_DOMAINS`."""
    return email.rpartition("@")[2].strip().lower() in PERSONAL_EMAIL_DOMAINS


def _industry_code(industry: str | None) -> float:
    if industry is None or not industry.strip():
        return _NAN
    return float(_INDUSTRY_CODES[normalise_industry(industry)])


def _optional(value: float | None) -> float:
    return _NAN if value is None else float(value)


def to_matrix(leads: Sequence[LeadFeatures]) -> npt.NDArray[np.float64]:
    """Returns the ``(len(leads), len(FEATURES))`` float64 feature matrix, NaN where missing.

    Python work is one pass per column producing plain floats; the arithmetic (logarithms) is
    done on whole columns with numpy so that 50k leads convert in milliseconds.
    """
    columns: dict[str, list[float]] = {
        "personal_email": [
            _NAN if lead.email is None else float(is_personal_email(lead.email)) for lead in leads
        ],
        "log_employee_count": [_optional(lead.employee_count) for lead in leads],
        "seniority_level": [
            _NAN if lead.seniority is None else float(SENIORITY_LEVELS[lead.seniority])
            for lead in leads
        ],
        "industry": [_industry_code(lead.industry) for lead in leads],
        "source": [
            _NAN if lead.source is None else float(_SOURCE_CODES[lead.source]) for lead in leads
        ],
        "page_visits": [_optional(lead.page_visits) for lead in leads],
        "pricing_page_visits": [_optional(lead.pricing_page_visits) for lead in leads],
        "demo_requested": [_optional(lead.demo_requested) for lead in leads],
        "days_since_last_touch": [_optional(lead.days_since_last_touch) for lead in leads],
    }
    matrix = np.empty((len(leads), len(FEATURES)), dtype=np.float64)
    for index, name in enumerate(FEATURES):
        matrix[:, index] = columns[name]
    log_column = FEATURES.index("log_employee_count")
    # Company size spans 1..10M; the log keeps the scale readable in explanations. log(0) is
    # impossible (the API requires >= 1), but clip anyway so bad data cannot produce -inf.
    matrix[:, log_column] = np.log(np.clip(matrix[:, log_column], 1.0, None))
    return matrix


_FIELDS: Final[tuple[str, ...]] = tuple(LeadFeatures.__dataclass_fields__)
_READ_FIELDS: Final = operator.attrgetter(*_FIELDS)


def features_to_json(lead: LeadFeatures) -> dict[str, object]:
    """The lead's known values as JSON-ready data (missing fields left out), for storage."""
    # Read at once and patched where needed: this runs for every scored lead.
    document: dict[str, object] = {
        name: value
        for name, value in zip(_FIELDS, _READ_FIELDS(lead), strict=True)
        if value is not None
    }
    if lead.seniority is not None:
        document["seniority"] = lead.seniority.value
    if lead.source is not None:
        document["source"] = lead.source.value
    if lead.create_time is not None:
        document["create_time"] = lead.create_time.isoformat()
    return document


def features_from_json(document: Mapping[str, object]) -> LeadFeatures:
    """Inverse of :func:`features_to_json`; unknown keys are ignored (older or newer rows)."""
    values: dict[str, object] = {
        key: value for key, value in document.items() if key in LeadFeatures.__dataclass_fields__
    }
    if isinstance(seniority := values.get("seniority"), str):
        values["seniority"] = Seniority(seniority)
    if isinstance(source := values.get("source"), str):
        values["source"] = LeadSource(source)
    if isinstance(created := values.get("create_time"), str):
        values["create_time"] = datetime.fromisoformat(created)
    return LeadFeatures(**values)  # type: ignore[arg-type]
