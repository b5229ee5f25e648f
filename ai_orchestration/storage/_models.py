"""ORM models: the schema as the code sees it.

Migrations in ``migrations/versions`` are the source of truth for the database; a test compares
this metadata with a migrated database so the two cannot drift. Every table leads with
``tenant_id`` so that every index a query uses starts with the tenant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, MetaData, PrimaryKeyConstraint, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ai_orchestration.storage._common import JsonValue
from ai_orchestration.storage._types import PortableJSON, UTCDateTime

__all__ = ["Base", "IdempotencyRecordModel", "TenantSettingModel"]

# Deterministic constraint names let later migrations drop or alter constraints by name on both
# backends (SQLite otherwise leaves them unnamed).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every storage model; its metadata is what migrations must match."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdempotencyRecordModel(Base):
    """The stored outcome of one request sent with a ``request_id``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "method", "request_id"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    method: Mapped[str] = mapped_column(String())
    request_id: Mapped[str] = mapped_column(String())
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary())
    resource_name: Mapped[str | None] = mapped_column(String(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenantSettingModel(Base):
    """One JSON setting of one tenant."""

    __tablename__ = "tenant_settings"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "key"),)

    tenant_id: Mapped[str] = mapped_column(String())
    key: Mapped[str] = mapped_column(String())
    # JSON null is refused by the repository (delete the key instead), so the column is NOT NULL.
    value: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
