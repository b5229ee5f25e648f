"""Synthetic leads as ``crm.ai.v1.Lead`` messages, and small call helpers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from crm.ai.v1 import scoring_pb2

from ai_orchestration.api._scoring_messages import lead_message
from ai_orchestration.scoring import LeadFeatures

__all__ = ["lead_message", "lead_messages", "metadata", "new_request_id"]


def lead_messages(leads: Sequence[LeadFeatures], prefix: str) -> list[scoring_pb2.Lead]:
    """Messages for ``leads`` with ids ``{prefix}-{index}``."""
    return [lead_message(f"{prefix}-{i}", lead) for i, lead in enumerate(leads)]


def new_request_id() -> str:
    """A fresh request id."""
    return str(uuid.uuid4())


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token."""
    return (("authorization", f"Bearer {token}"),)
