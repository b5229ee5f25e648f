"""Prompt templates: immutable numbered versions, global or per tenant, and A/B splits.

A template name has global versions (owner ``"*"``, shared by every tenant) and, for a tenant that
publishes its own, tenant versions that *shadow* the global ones for that tenant only. Version
numbers are chosen so that, within what one tenant can see (its own versions and the global
ones), a name and a version always denote one text: a tenant version is numbered after every
version the tenant could see when it was published, and a global version after every earlier
global version. Old call records that name a global version therefore stay readable after the
tenant publishes an override (:meth:`PromptTemplateRepository.get` falls back to the global row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, insert, literal, select, text

from ai_orchestration.records import GLOBAL_OWNER, JsonValue
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import PromptExperimentModel, PromptTemplateModel

__all__ = ["PromptTemplateRepository", "StoredPromptExperiment", "StoredPromptTemplate"]

_Template = PromptTemplateModel
_Experiment = PromptExperimentModel

# Namespace of the advisory lock keys (see _version_lock_key), so that they cannot collide with
# locks other code takes on the same PostgreSQL database.
_LOCK_NAMESPACE: Final[bytes] = b"ai-orchestration/prompt_templates/"


@dataclass(frozen=True, slots=True)
class StoredPromptTemplate:
    """One stored, immutable version of a prompt template."""

    tenant_id: str | None
    """The tenant whose override this is, or ``None`` for a global template."""
    name: str
    """Template name, e.g. ``lead_analysis``."""
    version: int
    """Version number, from 1."""
    system: str
    """System message text (may be empty)."""
    user: str
    """User message text."""
    created_at: datetime
    """When the version was published (aware, UTC)."""


@dataclass(frozen=True, slots=True)
class StoredPromptExperiment:
    """An A/B split of one template name between versions, for a tenant or globally."""

    tenant_id: str | None
    """The tenant the split applies to, or ``None`` for the global split."""
    name: str
    """Template name."""
    arms: tuple[tuple[int, float], ...]
    """``(version, share)`` pairs in ascending version order; the shares sum to 1."""
    updated_at: datetime
    """When the split was last set (aware, UTC)."""


class PromptTemplateRepository:
    """Stores template versions and splits; ``tenant_id=None`` means the global ones.

    Reads take the tenant first and see only that tenant's rows and the global rows.
    """

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies ``created_at`` and ``updated_at``."""
        self._database = database
        self._clock = clock

    async def add(
        self, tenant_id: str | None, name: str, *, system: str, user: str
    ) -> StoredPromptTemplate:
        """Store a new version of ``name`` and return it with its number.

        A tenant version is numbered after the highest version among the tenant's own and the
        global ones; a global version after the highest global one. Publishers of one name are
        serialised (an advisory lock on PostgreSQL, SQLite's single writer), so two publishes
        never compute the same number.
        """
        owner = _owner(tenant_id)
        require_text("name", name)
        created_at = require_aware("clock()", self._clock())
        next_version = (
            select(func.coalesce(func.max(_Template.version), 0) + 1)
            .where(_Template.name == name, _Template.owner.in_(_visible_owners(tenant_id)))
            .scalar_subquery()
        )
        # One INSERT ... SELECT: on SQLite the statement holds the write lock from its start, so
        # the MAX it reads cannot be overtaken by another writer.
        statement = (
            insert(_Template)
            .from_select(
                ["owner", "name", "version", "system_text", "user_text", "created_at"],
                select(
                    literal(owner),
                    literal(name),
                    next_version,
                    literal(system),
                    literal(user),
                    literal(created_at, _Template.created_at.type),
                ),
            )
            .returning(_Template.version)
        )
        async with self._database.transaction() as session:
            if self._database.backend == "postgresql":
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _version_lock_key(name)}
                )
            version = (await session.execute(statement)).scalar_one()
        return StoredPromptTemplate(
            tenant_id=tenant_id,
            name=name,
            version=version,
            system=system,
            user=user,
            created_at=created_at,
        )

    async def add_global_if_absent(
        self, name: str, version: int, *, system: str, user: str
    ) -> bool:
        """Store a global version with a fixed number unless it exists; return whether it was
        stored. Used to seed the built-in templates: safe to repeat and to race."""
        require_text("name", name)
        if version < 1:
            raise ValueError("version must be at least 1")
        values: dict[str, Any] = {
            "owner": GLOBAL_OWNER,
            "name": name,
            "version": version,
            "system_text": system,
            "user_text": user,
            "created_at": require_aware("clock()", self._clock()),
        }
        statement = (
            dialect_insert(self._database.backend, _Template)
            .values(values)
            .on_conflict_do_nothing(
                index_elements=[_Template.owner, _Template.name, _Template.version]
            )
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement)
            return cast(CursorResult[Any], result).rowcount > 0

    async def get(
        self, tenant_id: str | None, name: str, version: int
    ) -> StoredPromptTemplate | None:
        """Version ``version`` of ``name`` as the tenant sees it: its own, else the global one."""
        statement = (
            select(_Template)
            .where(
                _Template.name == require_text("name", name),
                _Template.version == version,
                _Template.owner.in_(_visible_owners(tenant_id)),
            )
            .order_by(_global_last())
            .limit(1)
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        return None if row is None else _stored(row)

    async def latest(self, tenant_id: str | None, name: str) -> StoredPromptTemplate | None:
        """The newest version the tenant uses: its own newest if it has any, else the global."""
        statement = (
            select(_Template)
            .where(
                _Template.name == require_text("name", name),
                _Template.owner.in_(_visible_owners(tenant_id)),
            )
            .order_by(_global_last(), _Template.version.desc())
            .limit(1)
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        return None if row is None else _stored(row)

    async def list_versions(self, tenant_id: str | None, name: str) -> list[StoredPromptTemplate]:
        """The versions the tenant uses, oldest first: its own if it has any, else the global."""
        statement = (
            select(_Template)
            .where(
                _Template.name == require_text("name", name),
                _Template.owner.in_(_visible_owners(tenant_id)),
            )
            .order_by(_Template.version)
        )
        async with self._database.sessionmaker() as session:
            rows = [_stored(row) for row in (await session.execute(statement)).scalars()]
        own = [row for row in rows if row.tenant_id is not None]
        return own or rows

    async def set_experiment(
        self, tenant_id: str | None, name: str, arms: Sequence[tuple[int, float]]
    ) -> None:
        """Create or replace the split of ``name`` for the tenant (or globally).

        The caller checks that the versions exist and the shares sum to 1; an empty ``arms``
        is refused (use :meth:`clear_experiment`).
        """
        if not arms:
            raise ValueError("an experiment needs at least one arm; clear it instead")
        values: dict[str, Any] = {
            "owner": _owner(tenant_id),
            "name": require_text("name", name),
            "arms": [
                {"version": int(version), "share": float(share)} for version, share in sorted(arms)
            ],
            "updated_at": require_aware("clock()", self._clock()),
        }
        new_row = dialect_insert(self._database.backend, _Experiment).values(values)
        upsert = new_row.on_conflict_do_update(
            index_elements=[_Experiment.owner, _Experiment.name],
            set_={"arms": new_row.excluded.arms, "updated_at": new_row.excluded.updated_at},
        )
        async with self._database.transaction() as session:
            await session.execute(upsert)

    async def get_experiment(
        self, tenant_id: str | None, name: str
    ) -> StoredPromptExperiment | None:
        """The split set for exactly this tenant (or the global one for ``None``), if any."""
        statement = select(_Experiment).where(
            _Experiment.owner == _owner(tenant_id),
            _Experiment.name == require_text("name", name),
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        if row is None:
            return None
        return StoredPromptExperiment(
            tenant_id=_tenant_of(row.owner),
            name=row.name,
            arms=tuple(_arm(arm) for arm in row.arms),
            updated_at=row.updated_at,
        )

    async def clear_experiment(self, tenant_id: str | None, name: str) -> bool:
        """Remove the split of ``name`` for the tenant (or globally); return whether one existed."""
        statement = delete(_Experiment).where(
            _Experiment.owner == _owner(tenant_id),
            _Experiment.name == require_text("name", name),
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement)
            return cast(CursorResult[Any], result).rowcount > 0


def _owner(tenant_id: str | None) -> str:
    if tenant_id is None:
        return GLOBAL_OWNER
    if require_tenant(tenant_id) == GLOBAL_OWNER:
        raise ValueError(f"{GLOBAL_OWNER!r} is reserved for global templates; pass None")
    return tenant_id


def _tenant_of(owner: str) -> str | None:
    return None if owner == GLOBAL_OWNER else owner


def _visible_owners(tenant_id: str | None) -> tuple[str, ...]:
    owner = _owner(tenant_id)
    return (GLOBAL_OWNER,) if owner == GLOBAL_OWNER else (owner, GLOBAL_OWNER)


def _global_last() -> ColumnElement[bool]:
    # false sorts before true on both backends: the tenant's own rows come first.
    return _Template.owner == GLOBAL_OWNER


def _arm(stored: dict[str, JsonValue]) -> tuple[int, float]:
    version, share = stored.get("version"), stored.get("share")
    if not isinstance(version, int) or not isinstance(share, int | float):
        raise ValueError(f"malformed experiment arm {stored!r} in prompt_template_experiments")
    return version, float(share)


def _version_lock_key(name: str) -> int:
    digest = hashlib.sha256(_LOCK_NAMESPACE + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _stored(row: PromptTemplateModel) -> StoredPromptTemplate:
    return StoredPromptTemplate(
        tenant_id=_tenant_of(row.owner),
        name=row.name,
        version=row.version,
        system=row.system_text,
        user=row.user_text,
        created_at=row.created_at,
    )
