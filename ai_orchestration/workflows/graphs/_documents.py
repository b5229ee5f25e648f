"""Conversions between the workflows' proto3-JSON documents and the scoring core's types.

The workflow core never builds a protobuf message (see :mod:`._types`): a ``Lead`` arrives as
the proto3 JSON form with proto field names and enum names (``{"lead_id": "L-1", "seniority":
"SENIORITY_VP", "demo_requested": true, ...}``) and a score leaves as a ``LeadScore`` document
the gRPC adapter parses with ``google.protobuf.json_format``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ai_orchestration.scoring import LeadFeatures, LeadSource, ScoreRecord, Seniority
from ai_orchestration.workflows._types import JsonDoc

__all__ = [
    "CHANNELS",
    "QUALIFICATIONS",
    "TONES",
    "lead_features_of",
    "lead_recipient",
    "name_from_email",
    "rfc3339",
    "score_document",
]

_SENIORITY: Final[dict[str, Seniority]] = {
    "SENIORITY_INDIVIDUAL_CONTRIBUTOR": Seniority.IC,
    "SENIORITY_MANAGER": Seniority.MANAGER,
    "SENIORITY_DIRECTOR": Seniority.DIRECTOR,
    "SENIORITY_VP": Seniority.VP,
    "SENIORITY_C_LEVEL": Seniority.C_LEVEL,
}
_SOURCE: Final[dict[str, LeadSource]] = {
    "LEAD_SOURCE_WEB": LeadSource.WEB,
    "LEAD_SOURCE_PAID": LeadSource.PAID,
    "LEAD_SOURCE_OUTBOUND": LeadSource.OUTBOUND,
    "LEAD_SOURCE_EVENT": LeadSource.EVENT,
    "LEAD_SOURCE_REFERRAL": LeadSource.REFERRAL,
}
_TEXT: Final[tuple[str, ...]] = ("email", "company_name", "industry", "country", "job_title")
_INTEGERS: Final[tuple[str, ...]] = (
    "employee_count",
    "page_visits",
    "pricing_page_visits",
    "days_since_last_touch",
)

CHANNELS: Final[frozenset[str]] = frozenset(
    {"CHANNEL_EMAIL", "CHANNEL_LINKEDIN", "CHANNEL_PHONE", "CHANNEL_SMS"}
)
"""Names of the ``Channel`` values a draft can be written for."""
QUALIFICATIONS: Final[frozenset[str]] = frozenset(
    {"QUALIFICATION_QUALIFIED", "QUALIFICATION_NURTURE", "QUALIFICATION_DISQUALIFIED"}
)
"""Names of the decided ``Qualification`` values."""
TONES: Final[dict[str, str]] = {
    "TONE_PROFESSIONAL": "professional",
    "TONE_FRIENDLY": "friendly",
    "TONE_FORMAL": "formal",
    "TONE_CASUAL": "casual",
}
"""``Tone`` names and the word the prompt uses for each (unset: the tenant's brand voice)."""

_GENERIC_MAILBOXES: Final[frozenset[str]] = frozenset(
    {"info", "sales", "contact", "hello", "admin", "team", "office", "support", "mail", "hr"}
)


def _number(value: object) -> float | None:
    # proto3 JSON writes int64 as strings; int32 and double as numbers (or strings, accepted).
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def lead_features_of(lead: Mapping[str, Any]) -> LeadFeatures:
    """The scoring core's view of a ``Lead`` document; absent or unparsable fields are unknown."""
    values: dict[str, object] = {}
    for name in _TEXT:
        text = lead.get(name)
        if isinstance(text, str) and text.strip():
            values[name] = text
    for name in _INTEGERS:
        number = _number(lead.get(name))
        if number is not None:
            values[name] = int(number)
    deal = _number(lead.get("estimated_deal_value"))
    if deal is not None:
        values["estimated_deal_value"] = deal
    if isinstance(demo := lead.get("demo_requested"), bool):
        values["demo_requested"] = demo
    if (seniority := _SENIORITY.get(str(lead.get("seniority", "")))) is not None:
        values["seniority"] = seniority
    if (source := _SOURCE.get(str(lead.get("source", "")))) is not None:
        values["source"] = source
    if (created := _timestamp(lead.get("create_time"))) is not None:
        values["create_time"] = created
    return LeadFeatures(**values)  # type: ignore[arg-type]


def rfc3339(value: datetime) -> str:
    """A proto3 JSON ``Timestamp`` (UTC, ``Z`` suffix)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _factor(document: Mapping[str, Any]) -> JsonDoc:
    return {
        "feature": str(document.get("feature", "")),
        "value": str(document.get("value", "")),
        "contribution": float(document.get("contribution", 0.0) or 0.0),
        "points": int(document.get("points", 0) or 0),
        "reason": str(document.get("reason", "")),
    }


def score_document(record: ScoreRecord) -> JsonDoc:
    """The ``LeadScore`` document of a stored score."""
    return {
        "score_id": record.score_id,
        "lead_id": record.lead_id,
        "score": record.score,
        "grade": f"GRADE_{record.grade}"
        if record.grade in ("A", "B", "C", "D")
        else "GRADE_UNSPECIFIED",
        "probability": record.probability,
        "confidence": record.confidence,
        "positive_factors": [_factor(f) for f in record.positive_factors],
        "negative_factors": [_factor(f) for f in record.negative_factors],
        "model_version": record.model_version,
        "experiment_arm": record.experiment_arm,
        "score_time": rfc3339(record.scored_at),
        "expire_time": rfc3339(record.expires_at),
        "input_digest": record.input_digest,
    }


_NAME_PART = re.compile(r"[a-z]{2,}")


def name_from_email(email: str) -> str:
    """``"jane.doe@acme.com"`` -> ``"Jane Doe"``; ``""`` for role mailboxes and opaque ids."""
    local = email.partition("@")[0].lower()
    parts = [p for p in re.split(r"[._\-+]", local) if p]
    if not parts or not all(_NAME_PART.fullmatch(p) for p in parts) or len(parts) > 3:
        return ""
    if parts[0] in _GENERIC_MAILBOXES:
        return ""
    return " ".join(p.capitalize() for p in parts)


def lead_recipient(lead: Mapping[str, Any]) -> JsonDoc:
    """The ``Recipient`` of a ``Lead`` document (the name guessed from the e-mail address)."""
    email = str(lead.get("email", ""))
    return {
        "name": name_from_email(email) if email else "",
        "company": str(lead.get("company_name", "")),
        "role": str(lead.get("job_title", "")),
        "email": email,
    }
