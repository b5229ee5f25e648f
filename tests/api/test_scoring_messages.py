"""The Lead message mapping is lossless both ways."""

from __future__ import annotations

from ai_orchestration.api._scoring_messages import lead_features, lead_message
from ai_orchestration.scoring import LeadFeatures, generate_leads


def test_features_survive_a_round_trip_through_the_message() -> None:
    leads = [*generate_leads(500, seed=13).leads, LeadFeatures()]
    assert [lead_features(lead_message(f"L-{i}", x)) for i, x in enumerate(leads)] == leads


def test_unknown_fields_stay_unset() -> None:
    message = lead_message("L-1", LeadFeatures(demo_requested=False))
    assert message.HasField("demo_requested") and not message.demo_requested
    assert not message.HasField("page_visits") and not message.HasField("create_time")
