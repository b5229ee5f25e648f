"""TenantSettingsRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ai_orchestration.storage import Database, JsonValue, TenantSettingsRepository
from ai_orchestration.storage._models import TenantSettingModel
from tests.storage._support import FakeClock

TENANT = "tenant-a"


@pytest.fixture
def repo(database: Database, clock: FakeClock) -> TenantSettingsRepository:
    return TenantSettingsRepository(database=database, clock=clock)


async def _updated_at(database: Database, tenant_id: str, key: str) -> datetime:
    statement = select(TenantSettingModel.updated_at).where(
        TenantSettingModel.tenant_id == tenant_id, TenantSettingModel.key == key
    )
    async with database.sessionmaker() as session:
        return (await session.execute(statement)).scalar_one()


async def test_missing_setting_is_none(repo: TenantSettingsRepository) -> None:
    assert await repo.get(TENANT, "scoring.threshold") is None
    assert await repo.list(TENANT) == {}


@pytest.mark.parametrize(
    "value",
    [
        "plain text",
        "ünïcødé ✓",
        0,
        -7,
        2**40,
        0.125,
        True,
        False,
        [],
        [1, "two", 3.5, None, [False]],
        {},
        {"weights": {"email": 0.4, "calls": [1, 2]}, "enabled": True, "note": None},
    ],
)
async def test_json_values_round_trip(repo: TenantSettingsRepository, value: JsonValue) -> None:
    await repo.set(TENANT, "k", value)

    stored = await repo.get(TENANT, "k")
    assert stored == value
    assert type(stored) is type(value)


async def test_set_upserts(
    repo: TenantSettingsRepository, database: Database, clock: FakeClock
) -> None:
    await repo.set(TENANT, "model", {"version": 1})
    first_update = await _updated_at(database, TENANT, "model")
    clock.advance(timedelta(seconds=90))

    await repo.set(TENANT, "model", {"version": 2})

    assert await repo.get(TENANT, "model") == {"version": 2}
    assert await repo.list(TENANT) == {"model": {"version": 2}}
    assert first_update == clock() - timedelta(seconds=90)
    assert await _updated_at(database, TENANT, "model") == clock()


async def test_updated_at_is_aware_utc(repo: TenantSettingsRepository, database: Database) -> None:
    await repo.set(TENANT, "k", 1)

    updated_at = await _updated_at(database, TENANT, "k")
    assert updated_at.tzinfo is UTC
    assert updated_at == datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def test_list_returns_every_key(repo: TenantSettingsRepository) -> None:
    await repo.set(TENANT, "a", 1)
    await repo.set(TENANT, "b", [2])
    await repo.set(TENANT, "c", {"three": 3})

    assert await repo.list(TENANT) == {"a": 1, "b": [2], "c": {"three": 3}}


async def test_delete(repo: TenantSettingsRepository) -> None:
    await repo.set(TENANT, "a", 1)
    await repo.set(TENANT, "b", 2)

    assert await repo.delete(TENANT, "a") is True
    assert await repo.delete(TENANT, "a") is False
    assert await repo.get(TENANT, "a") is None
    assert await repo.list(TENANT) == {"b": 2}


@pytest.mark.parametrize(
    ("tenant_id", "key", "value", "complaint"),
    [
        (TENANT, "k", None, "delete it instead"),
        ("", "k", 1, "tenant_id"),
        (TENANT, "", 1, "key"),
    ],
)
async def test_set_rejects_bad_arguments(
    repo: TenantSettingsRepository, tenant_id: str, key: str, value: JsonValue, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        await repo.set(tenant_id, key, value)
    assert await repo.list(TENANT) == {}
