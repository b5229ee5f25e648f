"""What the insight core hands to its store and gets back: the storage contract's vocabulary.

The storage layer implements :class:`InsightStore` (``storage.InteractionRepository``) with these
records; the core never sees a row or a session.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ai_orchestration.insights._types import Chunk, Interaction, JsonValue, Signals

__all__ = [
    "Citation",
    "ErasureCounts",
    "IngestOutcome",
    "NewAlert",
    "NewInteraction",
    "PendingPassage",
    "StoredAlert",
    "StoredInsight",
    "StoredInteraction",
    "content_digest",
]


class IngestOutcome(StrEnum):
    """What storing one interaction did."""

    INGESTED = "ingested"
    """Stored for the first time."""
    DUPLICATE = "duplicate"
    """Already stored with the same content; nothing written."""
    CONFLICT = "conflict"
    """Already stored with different content; nothing written (never a silent overwrite)."""


def content_digest(interaction: Interaction) -> str:
    """SHA-256 over every field the caller sent, so a re-send is told apart from an edit."""
    document = [
        interaction.customer_id,
        interaction.kind.value,
        interaction.direction.value,
        interaction.occur_time.timestamp(),
        interaction.subject,
        interaction.body,
        list(interaction.participants),
    ]
    encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewInteraction:
    """An interaction ready to store: its digest, signals and passages computed."""

    interaction: Interaction
    signals: Signals
    chunks: tuple[Chunk, ...]
    digest: str = field(default="")
    """:func:`content_digest` of the interaction; computed when left empty."""

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", content_digest(self.interaction))


@dataclass(frozen=True, slots=True)
class Citation:
    """A quoted passage of a stored interaction that supports a statement."""

    interaction_id: str
    quote: str
    """Verbatim ``interaction.text[start:end]``."""
    relevance: float
    """0..1: similarity to the question, or the strength of the signal behind an insight."""
    start: int
    end: int

    def to_json(self) -> dict[str, JsonValue]:
        """For stored insights."""
        return {
            "interaction_id": self.interaction_id,
            "quote": self.quote,
            "relevance": self.relevance,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class StoredInteraction:
    """An interaction as stored, with the signals computed when it was ingested."""

    interaction: Interaction
    signals: Signals
    ingested_at: datetime


@dataclass(frozen=True, slots=True)
class PendingPassage:
    """A passage waiting for its vector, claimed by one embedding worker for a while."""

    passage_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """How much of a customer an erasure deleted."""

    interactions: int = 0
    passages: int = 0
    insights: int = 0
    alerts: int = 0
    cache_entries: int = 0
    runs: int = 0
    """``customer_follow_up`` runs, with their events, deliveries and checkpoints."""

    def to_json(self) -> dict[str, JsonValue]:
        """For the erasure record."""
        return {
            "interactions": self.interactions,
            "passages": self.passages,
            "insights": self.insights,
            "alerts": self.alerts,
            "cache_entries": self.cache_entries,
            "runs": self.runs,
        }


@dataclass(frozen=True, slots=True)
class StoredInsight:
    """A generated insight as stored and listed."""

    insight_id: str
    customer_id: str
    kind: str
    code: str
    title: str
    description: str
    confidence: float
    evidence: tuple[dict[str, JsonValue], ...]
    """Citations: ``interaction_id``, ``quote``, ``relevance``, ``start_offset``, ``end_offset``."""
    usage: dict[str, JsonValue]
    """The wording's usage: tokens, cost, model, degraded."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert the rules raised, ready for the alert log (which gives it id and sequence)."""

    interaction_id: str
    """The interaction whose commit raised it."""
    customer_id: str
    kind: str
    """An :class:`~ai_orchestration.insights.AlertKind` value."""
    severity: int
    """A :class:`~ai_orchestration.insights.Severity` value."""
    message: str
    """One sentence, from facts only."""
    evidence: tuple[Citation, ...]
    """The passages of the interaction(s) that raised it."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as the log holds it."""

    sequence: int
    """Position in the tenant's alert log, from 1, without gaps."""
    alert_id: str
    customer_id: str
    kind: str
    severity: int
    message: str
    evidence: tuple[Citation, ...]
    interaction_id: str
    run_id: str
    """The follow-up run started for it, or empty."""
    created_at: datetime
