"""Small helpers shared by the repositories: clocks, argument checks, dialect-specific inserts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy.dialects import postgresql, sqlite

Clock: TypeAlias = Callable[[], datetime]
"""Returns the current time as a timezone-aware datetime; injected so tests can move time."""

UpsertInsert: TypeAlias = postgresql.Insert | sqlite.Insert


def utc_now() -> datetime:
    """The default :data:`Clock`: the current time in UTC."""
    return datetime.now(UTC)


def require_tenant(tenant_id: str) -> str:
    """Reject an empty tenant: a blank tenant would silently become a shared bucket."""
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError("tenant_id must be a non-empty string")
    return tenant_id


def require_text(name: str, value: str) -> str:
    """Reject empty key parts, which would make distinct records collide."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def require_aware(name: str, value: datetime) -> datetime:
    """Convert ``value`` to UTC, rejecting naive datetimes whose zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def dialect_insert(dialect_name: str, table: Any) -> UpsertInsert:
    """An INSERT supporting ``ON CONFLICT`` for the given backend.

    SQLAlchemy has no portable upsert; both supported backends spell it the same way in SQL, so
    callers can use ``on_conflict_do_update`` / ``excluded`` on whichever construct comes back.
    """
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect_name!r}")
