"""Synthetic leads as ``crm.ai.v1.Lead`` messages, and small call helpers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

from crm.ai.v1 import scoring_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.scoring import LeadFeatures, LeadSource, Seniority

_SENIORITY: Final[dict[Seniority, int]] = {
    Seniority.IC: scoring_pb2.SENIORITY_INDIVIDUAL_CONTRIBUTOR,
    Seniority.MANAGER: scoring_pb2.SENIORITY_MANAGER,
    Seniority.DIRECTOR: scoring_pb2.SENIORITY_DIRECTOR,
    Seniority.VP: scoring_pb2.SENIORITY_VP,
    Seniority.C_LEVEL: scoring_pb2.SENIORITY_C_LEVEL,
}
_SOURCE: Final[dict[LeadSource, int]] = {
    LeadSource.WEB: scoring_pb2.LEAD_SOURCE_WEB,
    LeadSource.PAID: scoring_pb2.LEAD_SOURCE_PAID,
    LeadSource.OUTBOUND: scoring_pb2.LEAD_SOURCE_OUTBOUND,
    LeadSource.EVENT: scoring_pb2.LEAD_SOURCE_EVENT,
    LeadSource.REFERRAL: scoring_pb2.LEAD_SOURCE_REFERRAL,
}


def lead_message(lead_id: str, lead: LeadFeatures) -> scoring_pb2.Lead:
    """The ``Lead`` message a CRM would send for ``lead``."""
    message = scoring_pb2.Lead(lead_id=lead_id)
    for name in ("email", "company_name", "industry", "country", "job_title"):
        if (value := getattr(lead, name)) is not None:
            setattr(message, name, value)
    for name in (
        "employee_count",
        "page_visits",
        "pricing_page_visits",
        "demo_requested",
        "days_since_last_touch",
        "estimated_deal_value",
    ):
        if (value := getattr(lead, name)) is not None:
            setattr(message, name, value)
    if lead.seniority is not None:
        message.seniority = _SENIORITY[lead.seniority]  # type: ignore[assignment]
    if lead.source is not None:
        message.source = _SOURCE[lead.source]  # type: ignore[assignment]
    if lead.create_time is not None:
        stamp = Timestamp()
        stamp.FromDatetime(lead.create_time)
        message.create_time.CopyFrom(stamp)
    return message


def lead_messages(leads: Sequence[LeadFeatures], prefix: str) -> list[scoring_pb2.Lead]:
    """Messages for ``leads`` with ids ``{prefix}-{index}``."""
    return [lead_message(f"{prefix}-{i}", lead) for i, lead in enumerate(leads)]


def new_request_id() -> str:
    """A fresh request id."""
    return str(uuid.uuid4())


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token."""
    return (("authorization", f"Bearer {token}"),)
