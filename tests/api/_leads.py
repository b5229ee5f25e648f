"""Synthetic leads as ``crm.ai.v1.Lead`` messages, and small call helpers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from crm.ai.v1 import scoring_pb2

from ai_orchestration.scoring import LeadFeatures
from ai_orchestration.wire.scoring import lead_message

__all__ = ["HOT", "hot_lead", "lead_message", "lead_messages", "metadata", "new_request_id"]


def hot_lead(lead_id: str) -> scoring_pb2.Lead:
    """A lead every sensible model scores as hot: C-level, referral, demo requested."""
    return scoring_pb2.Lead(
        lead_id=lead_id,
        email="cto@bigco.example",
        employee_count=1500,
        seniority=scoring_pb2.SENIORITY_C_LEVEL,
        source=scoring_pb2.LEAD_SOURCE_REFERRAL,
        industry="Software",
        page_visits=12,
        pricing_page_visits=3,
        demo_requested=True,
        days_since_last_touch=2,
    )


HOT = hot_lead("hot-1")


def lead_messages(leads: Sequence[LeadFeatures], prefix: str) -> list[scoring_pb2.Lead]:
    """Messages for ``leads`` with ids ``{prefix}-{index}``."""
    return [lead_message(f"{prefix}-{i}", lead) for i, lead in enumerate(leads)]


def new_request_id() -> str:
    """A fresh request id."""
    return str(uuid.uuid4())


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token."""
    return (("authorization", f"Bearer {token}"),)
