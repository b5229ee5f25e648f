"""ORM models of the customer-insight tables (migration ``0006``).

Two parts of ``insight_passages`` differ by backend and are not modelled, so that the models
stay portable: the full text (an FTS5 table with triggers on SQLite, a generated ``tsvector``
column on PostgreSQL) and the ``embedding`` column (a float32 blob on SQLite, pgvector on
PostgreSQL). The repository reaches them through SQL of its own; :func:`include_in_comparison`
keeps them out of the models-versus-schema comparison.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ai_orchestration.records import JsonValue
from ai_orchestration.storage._models import Base
from ai_orchestration.storage._types import PortableJSON, UTCDateTime

__all__ = [
    "BACKEND_SPECIFIC_COLUMNS",
    "AlertLogModel",
    "AlertModel",
    "CustomerErasureModel",
    "CustomerInsightModel",
    "InteractionModel",
    "PassageModel",
    "include_in_comparison",
]

BACKEND_SPECIFIC_COLUMNS: Final[frozenset[str]] = frozenset({"embedding", "search_vector"})
"""Columns of ``insight_passages`` that exist with a backend's own type, or on one backend."""
_FULL_TEXT_TABLE: Final[str] = "insight_passages_fts"
_BACKEND_SPECIFIC_INDEXES: Final[frozenset[str]] = frozenset(
    {"ix_insight_passages_search_vector", "ix_insight_passages_embedding"}
)


def include_in_comparison(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic ``include_object`` hook: skip the backend-specific full-text and vector parts."""
    if type_ == "table" and name is not None and name.startswith(_FULL_TEXT_TABLE):
        return False
    if type_ == "column" and name in BACKEND_SPECIFIC_COLUMNS:
        return getattr(getattr(obj, "table", None), "name", None) != "insight_passages"
    return not (type_ == "index" and name in _BACKEND_SPECIFIC_INDEXES)


class InteractionModel(Base):
    """One ingested interaction with the signals computed at ingest."""

    __tablename__ = "insight_interactions"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "interaction_id"),
        Index(
            "ix_insight_interactions_alerts_pending",
            "tenant_id",
            "ingested_at",
            sqlite_where=text("alerts_pending"),
            postgresql_where=text("alerts_pending"),
        ),
        Index(
            "ix_insight_interactions_tenant_customer_occur_time",
            "tenant_id",
            "customer_id",
            "occur_time",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    interaction_id: Mapped[str] = mapped_column(String())
    customer_id: Mapped[str] = mapped_column(String())
    kind: Mapped[str] = mapped_column(String())
    direction: Mapped[str] = mapped_column(String())
    occur_time: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(String())
    body: Mapped[str] = mapped_column(String())
    participants: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    content_digest: Mapped[str] = mapped_column(String(64))
    signals: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    alerts_pending: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    """Committed but not yet read by the alert rules (the evaluation backlog)."""


class PassageModel(Base):
    """A sentence-aligned passage of an interaction: the unit of retrieval and citation."""

    __tablename__ = "insight_passages"
    __table_args__ = (
        PrimaryKeyConstraint("passage_id"),
        UniqueConstraint("tenant_id", "interaction_id", "position"),
        # Per-customer reads and the vector stamp (count and newest of the embedded ones).
        Index(
            "ix_insight_passages_customer_embedded",
            "tenant_id",
            "customer_id",
            "embedded",
            "passage_id",
        ),
        Index(
            "ix_insight_passages_backlog",
            "passage_id",
            sqlite_where=text("NOT embedded"),
            postgresql_where=text("NOT embedded"),
        ),
    )

    # INTEGER PRIMARY KEY on SQLite is the rowid, which the FTS5 table indexes by.
    passage_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String())
    customer_id: Mapped[str] = mapped_column(String())
    interaction_id: Mapped[str] = mapped_column(String())
    position: Mapped[int] = mapped_column(Integer())
    start_offset: Mapped[int] = mapped_column(Integer())
    end_offset: Mapped[int] = mapped_column(Integer())
    occur_time: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(String())
    embedded: Mapped[bool] = mapped_column(Boolean())
    embed_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CustomerInsightModel(Base):
    """A generated insight with its evidence."""

    __tablename__ = "customer_insights"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "insight_id"),
        Index(
            "ix_customer_insights_tenant_id_customer_id_created_at",
            "tenant_id",
            "customer_id",
            "created_at",
            "insight_id",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    insight_id: Mapped[str] = mapped_column(String())
    customer_id: Mapped[str] = mapped_column(String())
    kind: Mapped[str] = mapped_column(String())
    code: Mapped[str] = mapped_column(String())
    title: Mapped[str] = mapped_column(String())
    description: Mapped[str] = mapped_column(String())
    confidence: Mapped[float] = mapped_column(Float())
    evidence: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    usage: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerErasureModel(Base):
    """That a customer was erased: who, when, how much; the customer only as a digest."""

    __tablename__ = "customer_erasures"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "erasure_id"),)

    tenant_id: Mapped[str] = mapped_column(String())
    erasure_id: Mapped[str] = mapped_column(String())
    customer_digest: Mapped[str] = mapped_column(String(64))
    erased_by: Mapped[str] = mapped_column(String())
    counts: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertLogModel(Base):
    """A tenant's alert log: the last sequence handed out (a row lock serialises appends)."""

    __tablename__ = "insight_alert_logs"
    __table_args__ = (PrimaryKeyConstraint("tenant_id"),)

    tenant_id: Mapped[str] = mapped_column(String())
    last_sequence: Mapped[int] = mapped_column(BigInteger())


class AlertModel(Base):
    """One alert of a tenant's log."""

    __tablename__ = "insight_alerts"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "sequence"),
        UniqueConstraint("tenant_id", "alert_id"),
        Index("ix_insight_alerts_cooldown", "tenant_id", "customer_id", "kind", "created_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    sequence: Mapped[int] = mapped_column(BigInteger())
    alert_id: Mapped[str] = mapped_column(String())
    customer_id: Mapped[str] = mapped_column(String())
    kind: Mapped[str] = mapped_column(String())
    severity: Mapped[int] = mapped_column(Integer())
    message: Mapped[str] = mapped_column(String())
    evidence: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    interaction_id: Mapped[str] = mapped_column(String())
    run_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
