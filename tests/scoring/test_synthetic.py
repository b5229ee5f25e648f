"""The synthetic generator: reproducible, and its marginals are what its docstring promises."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

import numpy as np
import pytest

from ai_orchestration.scoring import (
    INDUSTRIES,
    LeadFeatures,
    LeadSource,
    Seniority,
    SyntheticLeads,
    generate_leads,
    is_personal_email,
)


def test_same_seed_same_leads() -> None:
    first, second = generate_leads(2_000, seed=3), generate_leads(2_000, seed=3)
    assert first.leads == second.leads
    assert np.array_equal(first.converted, second.converted)
    assert np.array_equal(first.created_days, second.created_days)


def test_different_seeds_differ() -> None:
    first, second = generate_leads(2_000, seed=3), generate_leads(2_000, seed=4)
    assert first.leads != second.leads
    assert not np.array_equal(first.converted, second.converted)


def _shares(values: list[object]) -> dict[object, float]:
    present = [value for value in values if value is not None]
    return {key: count / len(present) for key, count in Counter(present).items()}


def test_seniority_shares(synthetic: SyntheticLeads) -> None:
    shares = _shares([lead.seniority for lead in synthetic.leads])
    expected = {
        Seniority.C_LEVEL: 0.05,
        Seniority.VP: 0.10,
        Seniority.DIRECTOR: 0.20,
        Seniority.MANAGER: 0.30,
        Seniority.IC: 0.35,
    }
    for seniority, share in expected.items():
        assert shares[seniority] == pytest.approx(share, abs=0.02)


def test_source_shares(synthetic: SyntheticLeads) -> None:
    shares = _shares([lead.source for lead in synthetic.leads])
    expected = {
        LeadSource.WEB: 0.35,
        LeadSource.PAID: 0.25,
        LeadSource.OUTBOUND: 0.20,
        LeadSource.EVENT: 0.10,
        LeadSource.REFERRAL: 0.10,
    }
    for source, share in expected.items():
        assert shares[source] == pytest.approx(share, abs=0.02)


def test_personal_email_and_demo_shares(synthetic: SyntheticLeads) -> None:
    emails = [lead.email for lead in synthetic.leads if lead.email is not None]
    assert np.mean([is_personal_email(email) for email in emails]) == pytest.approx(0.20, abs=0.03)
    demos = [lead.demo_requested for lead in synthetic.leads if lead.demo_requested is not None]
    assert np.mean(demos) == pytest.approx(0.08, abs=0.02)


def test_conversion_rate(synthetic: SyntheticLeads) -> None:
    assert 0.10 <= synthetic.converted.mean() <= 0.15


def test_missing_rate_per_field(synthetic: SyntheticLeads) -> None:
    for field in fields(LeadFeatures):
        if field.name == "create_time":
            continue  # every CRM record has a creation time
        missing = np.mean([getattr(lead, field.name) is None for lead in synthetic.leads])
        assert 0.05 <= missing <= 0.30, field.name


def test_numeric_distributions(synthetic: SyntheticLeads) -> None:
    employees = [lead.employee_count for lead in synthetic.leads if lead.employee_count]
    assert 150 <= np.median(employees) <= 260
    visits = np.array(
        [lead.page_visits for lead in synthetic.leads if lead.page_visits is not None]
    )
    assert 2.5 <= visits.mean() <= 3.5
    assert visits.max() > 10 * visits.mean()  # heavy tail
    pricing = [p for lead in synthetic.leads if (p := lead.pricing_page_visits) is not None]
    assert np.mean(np.array(pricing) == 0) > 0.6
    days = [d for lead in synthetic.leads if (d := lead.days_since_last_touch) is not None]
    assert 11 <= np.mean(days) <= 17


def test_industries_are_skewed(synthetic: SyntheticLeads) -> None:
    shares = _shares([lead.industry for lead in synthetic.leads])
    assert len(shares) == 10
    assert max(shares.values()) > 4 * min(shares.values())


def test_created_over_24_months_with_drift(synthetic: SyntheticLeads) -> None:
    days = synthetic.created_days
    assert days.min() >= 0 and days.max() <= 730
    assert days.max() - days.min() > 700
    recent = days >= np.quantile(days, 0.8)
    # The baseline drifts upwards: recent leads convert more often than older ones.
    assert synthetic.converted[recent].mean() > synthetic.converted[~recent].mean()
    first = synthetic.leads[0].create_time
    assert first is not None and first.tzinfo is not None


def test_top_drivers_are_documented_drivers(synthetic: SyntheticLeads) -> None:
    assert len(synthetic.top_drivers) == 3
    assert set(synthetic.top_drivers) <= set(synthetic.drivers)
    assert synthetic.drivers["personal_email"] < 0
    assert synthetic.drivers["days_since_last_touch"] < 0


def test_industries_are_in_the_model_vocabulary(synthetic: SyntheticLeads) -> None:
    industries = {lead.industry for lead in synthetic.leads} - {None}
    assert industries <= set(INDUSTRIES) - {"other"}
