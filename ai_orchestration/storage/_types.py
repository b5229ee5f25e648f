"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["PortableJSON", "UTCDateTime"]

PortableJSON: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, stored as ``jsonb`` on PostgreSQL (indexable, compact)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always written and read back as a timezone-aware UTC datetime.

    PostgreSQL stores ``timestamptz`` natively. SQLite has no timestamp type: values are stored as
    naive ISO text that is UTC by construction, and the zone is re-attached on the way out, so
    callers never see a naive datetime from either backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; naive values are refused because their zone would be a guess."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; attach a zone")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Same-width UTC text keeps lexicographic order equal to time order for comparisons.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's naive values; convert PostgreSQL's to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
