"""Per-tenant settings: small JSON values under string keys."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, select

from ai_orchestration.records import JsonValue
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import TenantSettingModel

__all__ = ["TenantSettingsRepository"]

_Model = TenantSettingModel


class TenantSettingsRepository:
    """Reads and writes one tenant's settings at a time; no method reaches another tenant."""

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies ``updated_at``."""
        self._database = database
        self._clock = clock

    async def get(self, tenant_id: str, key: str) -> JsonValue | None:
        """The value stored under ``key``, or ``None`` when the tenant has no such setting."""
        statement = select(_Model.value).where(*_key_clause(tenant_id, key))
        async with self._database.sessionmaker() as session:
            return (await session.execute(statement)).scalar_one_or_none()

    async def set(self, tenant_id: str, key: str, value: JsonValue) -> None:
        """Create or replace the setting ``key`` (an upsert, atomic on both backends).

        Raises:
            ValueError: ``value`` is ``None`` (use :meth:`delete`; a stored JSON null would be
                indistinguishable from a missing setting in :meth:`get`), or an empty key part.
        """
        _key_clause(tenant_id, key)
        if value is None:
            raise ValueError("a setting cannot be None; delete it instead")
        values: dict[str, Any] = {
            "tenant_id": tenant_id,
            "key": key,
            "value": value,
            "updated_at": require_aware("clock()", self._clock()),
        }
        insert = dialect_insert(self._database.backend, _Model).values(values)
        upsert = insert.on_conflict_do_update(
            index_elements=[_Model.tenant_id, _Model.key],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        async with self._database.transaction() as session:
            await session.execute(upsert)

    async def list(self, tenant_id: str) -> dict[str, JsonValue]:
        """Every setting of the tenant, by key."""
        statement = select(_Model.key, _Model.value).where(
            _Model.tenant_id == require_tenant(tenant_id)
        )
        async with self._database.sessionmaker() as session:
            rows = await session.execute(statement)
            return {key: value for key, value in rows}

    async def delete(self, tenant_id: str, key: str) -> bool:
        """Remove the setting ``key``; return whether it existed."""
        statement = delete(_Model).where(*_key_clause(tenant_id, key))
        async with self._database.transaction() as session:
            result = await session.execute(statement)
            return cast(CursorResult[Any], result).rowcount > 0


def _key_clause(tenant_id: str, key: str) -> tuple[Any, ...]:
    return (
        _Model.tenant_id == require_tenant(tenant_id),
        _Model.key == require_text("key", key),
    )
