"""Idempotency records: retries with the same ``request_id`` replay the first response."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select

from ai_orchestration.errors import ConflictError
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import IdempotencyRecordModel

__all__ = ["IdempotencyRecord", "IdempotencyRepository", "compute_request_digest"]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_Model = IdempotencyRecordModel


def compute_request_digest(serialized_request: bytes) -> str:
    """The digest stored with a record: sha256 hex of the serialized request.

    Serialize with deterministic field order (protobuf ``SerializeToString(deterministic=True)``)
    so that a retry of the same request yields the same digest.
    """
    return hashlib.sha256(serialized_request).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The stored outcome of one request made with a ``request_id``."""

    tenant_id: str
    """Tenant that made the request."""
    method: str
    """Full RPC name, e.g. ``/crm.ai.v1.WorkflowService/StartRun``."""
    request_id: str
    """Caller-chosen id that makes retries safe."""
    request_digest: str
    """sha256 hex of the serialized request (see :func:`compute_request_digest`)."""
    response: bytes
    """The serialized response to replay."""
    resource_name: str | None
    """Name of the resource the request created, if any."""
    created_at: datetime
    """When the record was stored (aware, UTC)."""
    expires_at: datetime
    """After this instant the ``request_id`` may be reused (aware, UTC)."""

    def ensure_same_request(self, request_digest: str) -> None:
        """Raise :class:`ConflictError` unless ``request_digest`` is the stored request's.

        Raises:
            ConflictError: reason ``REQUEST_ID_REUSED``.
        """
        if request_digest == self.request_digest:
            return
        raise ConflictError(
            f"request_id {self.request_id!r} was already used for a different {self.method} "
            "request; use a new request_id for a different request, or resend the original "
            "request unchanged to get its response",
            reason="REQUEST_ID_REUSED",
            metadata={"method": self.method, "request_id": self.request_id},
        )


class IdempotencyRepository:
    """Stores and looks up :class:`IdempotencyRecord` rows, always within one tenant.

    Expired records are treated as absent: :meth:`get` does not return them and :meth:`put`
    replaces them, so a ``request_id`` becomes reusable once its record expires even before
    :meth:`purge_expired` deletes it.
    """

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies "now" for ``created_at`` and expiry checks."""
        self._database = database
        self._clock = clock

    async def get(self, tenant_id: str, method: str, request_id: str) -> IdempotencyRecord | None:
        """The tenant's live record for ``(method, request_id)``, or ``None``."""
        key = _key_clause(tenant_id, method, request_id)
        now = require_aware("clock()", self._clock())
        statement = select(_Model).where(*key, _Model.expires_at > now)
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
            return None if row is None else _to_record(row)

    async def put(
        self,
        tenant_id: str,
        method: str,
        request_id: str,
        *,
        request_digest: str,
        response: bytes,
        expires_at: datetime,
        resource_name: str | None = None,
    ) -> IdempotencyRecord:
        """Store the outcome of a request, or return the one stored first.

        Inserting and reading back happen in one transaction, so concurrent callers with the same
        key all end up with the single winning record.

        Returns:
            The stored record: the new one, or the earlier live one when its digest matches
            (replay its ``response`` rather than the new one).

        Raises:
            ConflictError: a live record has this key but a different ``request_digest``
                (reason ``REQUEST_ID_REUSED``).
            ValueError: an empty key part, a malformed digest, or an ``expires_at`` not after now.
        """
        key = _key_clause(tenant_id, method, request_id)
        if not _SHA256_HEX.fullmatch(request_digest):
            raise ValueError("request_digest must be 64 lowercase hex characters (sha256)")
        now = require_aware("clock()", self._clock())
        expires_at = require_aware("expires_at", expires_at)
        if expires_at <= now:
            raise ValueError(f"expires_at {expires_at.isoformat()} is not after now")
        values: dict[str, Any] = {
            "tenant_id": tenant_id,
            "method": method,
            "request_id": request_id,
            "request_digest": request_digest,
            "response": response,
            "resource_name": resource_name,
            "created_at": now,
            "expires_at": expires_at,
        }
        insert = dialect_insert(self._database.backend, _Model).values(values)
        replaceable = [name for name in values if name not in ("tenant_id", "method", "request_id")]
        upsert = insert.on_conflict_do_update(
            index_elements=[_Model.tenant_id, _Model.method, _Model.request_id],
            set_={name: insert.excluded[name] for name in replaceable},
            # Only an expired record gives way; a live one is kept and compared below.
            where=_Model.expires_at <= now,
        )
        async with self._database.transaction() as session:
            await session.execute(upsert)
            row = (await session.execute(select(_Model).where(*key))).scalar_one()
            record = _to_record(row)
        record.ensure_same_request(request_digest)
        return record

    async def purge_expired(self, now: datetime) -> int:
        """Delete every record that expired at or before ``now``; return how many went.

        The one operation that spans tenants: it is housekeeping, returns only a count and is
        meant for a periodic job, not for request handlers.
        """
        now = require_aware("now", now)
        async with self._database.transaction() as session:
            result = await session.execute(delete(_Model).where(_Model.expires_at <= now))
            return cast(CursorResult[Any], result).rowcount


def _key_clause(tenant_id: str, method: str, request_id: str) -> tuple[Any, ...]:
    return (
        _Model.tenant_id == require_tenant(tenant_id),
        _Model.method == require_text("method", method),
        _Model.request_id == require_text("request_id", request_id),
    )


def _to_record(row: IdempotencyRecordModel) -> IdempotencyRecord:
    return IdempotencyRecord(
        tenant_id=row.tenant_id,
        method=row.method,
        request_id=row.request_id,
        request_digest=row.request_digest,
        response=bytes(row.response),
        resource_name=row.resource_name,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
