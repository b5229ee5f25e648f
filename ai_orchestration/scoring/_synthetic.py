"""A seeded generator of realistic synthetic leads with outcomes from a known formula.

Used to test and benchmark training, and to bootstrap a global model before a tenant has
recorded outcomes. Every draw is vectorised with numpy; :class:`LeadFeatures` objects are built
only at the end.

Ground truth. The log-odds of conversion of a lead created ``t`` days after :data:`START` is::

    logit = INTERCEPT + DRIFT_PER_YEAR * t / 365
          + DRIVERS["demo_requested"] * demo
          + (DRIVERS["pricing_page_visits"] + PRICING_DRIFT_PER_YEAR * t / 365) * log1p(pricing)
          + DRIVERS["seniority_level"] * level              # ic=0 .. c_level=4
          + DRIVERS["personal_email"] * personal
          + DRIVERS["days_since_last_touch"] * min(days, 90)
          + DRIVERS["page_visits"] * log1p(visits)
          + DRIVERS["log_employee_count"] * (log(employees) - log(200))
          + SOURCE_EFFECTS[source] + INDUSTRY_EFFECTS[industry]
          + Normal(0, NOISE_SD)                             # what no CRM field explains

The outcome uses the complete values; missing fields are hidden only afterwards, as in a real
CRM. :data:`TOP_DRIVERS` are the three strongest drivers by expected absolute effect on the
log-odds (coefficient times the mean absolute deviation of the feature): demo requested,
seniority and pricing-page visits. Personal e-mail and days since the last touch lower the odds.

Drift: the baseline rises and pricing-page visits matter more over the 24 months, so a model
tested on the most recent 20% faces slightly different data than it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from ai_orchestration.scoring._features import LeadFeatures, LeadSource, Seniority

START: Final[datetime] = datetime(2024, 1, 1, tzinfo=UTC)
"""Creation time of day 0 of the synthetic history."""
SPAN_DAYS: Final[int] = 730
"""The leads are created uniformly over 24 months."""

INTERCEPT: Final[float] = -3.45
"""Baseline log-odds at day 0 (chosen for an overall conversion of about 12%)."""
DRIFT_PER_YEAR: Final[float] = 0.2
"""Yearly rise of the baseline log-odds."""
PRICING_DRIFT_PER_YEAR: Final[float] = 0.25
"""Yearly rise of the effect of log1p(pricing-page visits)."""
NOISE_SD: Final[float] = 0.3
"""Standard deviation of the unexplained part of the log-odds."""

DRIVERS: Final[dict[str, float]] = {
    "demo_requested": 2.5,
    "pricing_page_visits": 0.8,
    "seniority_level": 0.5,
    "personal_email": -0.8,
    "days_since_last_touch": -0.02,
    "page_visits": 0.2,
    "log_employee_count": 0.12,
}
"""True coefficients of the numeric drivers (at day 0), on the scales in the module docstring."""

TOP_DRIVERS: Final[tuple[str, ...]] = ("demo_requested", "seniority_level", "pricing_page_visits")
"""The three strongest true drivers, strongest first."""

SOURCE_SHARES: Final[dict[LeadSource, float]] = {
    LeadSource.WEB: 0.35,
    LeadSource.PAID: 0.25,
    LeadSource.OUTBOUND: 0.20,
    LeadSource.EVENT: 0.10,
    LeadSource.REFERRAL: 0.10,
}
SOURCE_EFFECTS: Final[dict[LeadSource, float]] = {
    LeadSource.WEB: 0.0,
    LeadSource.PAID: -0.2,
    LeadSource.OUTBOUND: -0.35,
    LeadSource.EVENT: 0.2,
    LeadSource.REFERRAL: 0.6,
}
SENIORITY_SHARES: Final[dict[Seniority, float]] = {
    Seniority.IC: 0.35,
    Seniority.MANAGER: 0.30,
    Seniority.DIRECTOR: 0.20,
    Seniority.VP: 0.10,
    Seniority.C_LEVEL: 0.05,
}
INDUSTRY_SHARES: Final[dict[str, float]] = {
    "software": 0.25,
    "financial_services": 0.14,
    "healthcare": 0.12,
    "manufacturing": 0.11,
    "retail": 0.09,
    "professional_services": 0.08,
    "education": 0.07,
    "media": 0.05,
    "telecommunications": 0.05,
    "government": 0.04,
}
INDUSTRY_EFFECTS: Final[dict[str, float]] = {
    "software": 0.3,
    "financial_services": 0.2,
    "healthcare": 0.0,
    "manufacturing": -0.1,
    "retail": -0.15,
    "professional_services": 0.1,
    "education": -0.3,
    "media": 0.0,
    "telecommunications": 0.05,
    "government": -0.4,
}
PERSONAL_EMAIL_SHARE: Final[float] = 0.20
DEMO_SHARE: Final[float] = 0.08

MISSING_RATES: Final[dict[str, float]] = {
    "email": 0.08,
    "company_name": 0.10,
    "industry": 0.15,
    "employee_count": 0.25,
    "seniority": 0.20,
    "source": 0.09,
    "page_visits": 0.12,
    "pricing_page_visits": 0.14,
    "demo_requested": 0.10,
    "days_since_last_touch": 0.18,
    "country": 0.22,
    "job_title": 0.27,
    "estimated_deal_value": 0.26,
}
"""Share of leads missing each field (independently per field)."""

_PERSONAL_DOMAINS: Final[tuple[str, ...]] = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
_COUNTRIES: Final[tuple[str, ...]] = ("US", "DE", "GB", "FR", "NL", "CA", "AU", "IN", "ES", "SE")
_TITLES: Final[dict[Seniority, str]] = {
    Seniority.IC: "Engineer",
    Seniority.MANAGER: "Engineering Manager",
    Seniority.DIRECTOR: "Director of Operations",
    Seniority.VP: "VP Sales",
    Seniority.C_LEVEL: "CEO",
}


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticLeads:
    """Generated leads and their ground truth."""

    leads: list[LeadFeatures]
    """The leads, with missing fields set to ``None``."""
    converted: npt.NDArray[np.bool_]
    """Whether each lead converted."""
    created_days: npt.NDArray[np.float64]
    """Days between :data:`START` and each lead's creation (also in ``create_time``)."""
    drivers: dict[str, float]
    """The true coefficients (:data:`DRIVERS` unless overridden)."""
    top_drivers: tuple[str, ...]
    """The three strongest true drivers (:data:`TOP_DRIVERS`)."""


def _choice(
    rng: np.random.Generator, shares: dict[str, float] | dict[Seniority, float], n: int
) -> npt.NDArray[np.intp]:
    probabilities = np.fromiter(shares.values(), dtype=np.float64)
    return rng.choice(len(probabilities), size=n, p=probabilities / probabilities.sum())


def generate_leads(
    n: int, *, seed: int, drivers: Mapping[str, float] | None = None
) -> SyntheticLeads:
    """Generates ``n`` leads and their outcomes; the same ``seed`` gives the same leads.

    ``drivers`` overrides some of the true coefficients of :data:`DRIVERS` (e.g. a market where
    demo requests are a bad sign), for testing that a model learns a different world; the
    returned ``top_drivers`` then is empty, since the ranking is only worked out for the default.
    """
    unknown = set(drivers or {}) - set(DRIVERS)
    if unknown:
        raise ValueError(f"unknown drivers: {sorted(unknown)}")
    coefficients = {**DRIVERS, **(drivers or {})}
    rng = np.random.default_rng(seed)
    created = np.sort(rng.uniform(0.0, SPAN_DAYS, size=n))
    years = created / 365.0

    industry_names = list(INDUSTRY_SHARES)
    industry = _choice(rng, INDUSTRY_SHARES, n)
    # Lognormal with median 200: most companies are small, a few are huge.
    employees = np.clip(np.round(rng.lognormal(np.log(200.0), 1.4, size=n)), 1, 10_000_000)
    seniority_values = list(SENIORITY_SHARES)
    seniority = _choice(rng, SENIORITY_SHARES, n)
    level = np.array([float(list(Seniority).index(s)) for s in seniority_values])[seniority]
    source_values = list(SOURCE_SHARES)
    source = rng.choice(len(source_values), size=n, p=list(SOURCE_SHARES.values()))
    personal = rng.random(n) < PERSONAL_EMAIL_SHARE
    # Negative binomial: mean 3, heavy right tail (a few leads browse a lot).
    visits = rng.negative_binomial(0.8, 0.8 / 3.8, size=n)
    # Pricing visits are a thin slice of all visits, so mostly 0.
    pricing = rng.binomial(visits, 0.12)
    demo = rng.random(n) < DEMO_SHARE
    days = np.floor(rng.exponential(14.0, size=n))

    logit = (
        INTERCEPT
        + DRIFT_PER_YEAR * years
        + coefficients["demo_requested"] * demo
        + (coefficients["pricing_page_visits"] + PRICING_DRIFT_PER_YEAR * years) * np.log1p(pricing)
        + coefficients["seniority_level"] * level
        + coefficients["personal_email"] * personal
        + coefficients["days_since_last_touch"] * np.minimum(days, 90.0)
        + coefficients["page_visits"] * np.log1p(visits)
        + coefficients["log_employee_count"] * (np.log(employees) - np.log(200.0))
        + np.array([SOURCE_EFFECTS[s] for s in source_values])[source]
        + np.array([INDUSTRY_EFFECTS[i] for i in industry_names])[industry]
        + rng.normal(0.0, NOISE_SD, size=n)
    )
    converted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    missing = {field: rng.random(n) < rate for field, rate in MISSING_RATES.items()}
    deal_values = np.round(rng.lognormal(np.log(5_000.0), 0.8, size=n) * (employees / 200) ** 0.3)
    domain_index = rng.integers(0, len(_PERSONAL_DOMAINS), size=n)
    country = rng.integers(0, len(_COUNTRIES), size=n)

    # Plain lists: indexing them in the loop below is several times faster than numpy scalars.
    absent = {field: mask.tolist() for field, mask in missing.items()}
    emails = [
        f"lead{i}@{_PERSONAL_DOMAINS[d] if p else f'co{i}.example'}"
        for i, (d, p) in enumerate(zip(domain_index.tolist(), personal.tolist(), strict=True))
    ]
    industry_list = [industry_names[i] for i in industry.tolist()]
    seniority_list = [seniority_values[i] for i in seniority.tolist()]
    source_list = [source_values[i] for i in source.tolist()]
    country_list = [_COUNTRIES[i] for i in country.tolist()]
    employee_list = employees.astype(np.int64).tolist()
    visit_list, pricing_list, demo_list = visits.tolist(), pricing.tolist(), demo.tolist()
    day_list, deal_list = days.astype(np.int64).tolist(), deal_values.tolist()
    create_times = [START + timedelta(days=d) for d in created.tolist()]

    def present(field: str, i: int) -> bool:
        return not absent[field][i]

    leads = [
        LeadFeatures(
            email=emails[i] if present("email", i) else None,
            company_name=f"Company {i}" if present("company_name", i) else None,
            industry=industry_list[i] if present("industry", i) else None,
            employee_count=employee_list[i] if present("employee_count", i) else None,
            seniority=seniority_list[i] if present("seniority", i) else None,
            source=source_list[i] if present("source", i) else None,
            page_visits=visit_list[i] if present("page_visits", i) else None,
            pricing_page_visits=pricing_list[i] if present("pricing_page_visits", i) else None,
            demo_requested=demo_list[i] if present("demo_requested", i) else None,
            days_since_last_touch=day_list[i] if present("days_since_last_touch", i) else None,
            country=country_list[i] if present("country", i) else None,
            job_title=_TITLES[seniority_list[i]] if present("job_title", i) else None,
            estimated_deal_value=deal_list[i] if present("estimated_deal_value", i) else None,
            create_time=create_times[i],
        )
        for i in range(n)
    ]
    return SyntheticLeads(
        leads=leads,
        converted=converted,
        created_days=created,
        drivers=coefficients,
        top_drivers=TOP_DRIVERS if coefficients == DRIVERS else (),
    )
