"""LeadOutcomeRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from ai_orchestration.scoring import OutcomeRecord
from ai_orchestration.storage import Database, JsonValue, LeadOutcomeRepository
from ai_orchestration.storage._models import LeadOutcomeModel

TENANT = "tenant-a"
T0 = datetime(2030, 5, 6, 7, 8, 9, 101112, tzinfo=UTC)


@pytest.fixture
def repo(database: Database) -> LeadOutcomeRepository:
    return LeadOutcomeRepository(database=database)


def _outcome(
    lead_id: str,
    *,
    converted: bool = True,
    days: int = 0,
    outcome_id: str | None = None,
    features: dict[str, JsonValue] | None = None,
) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_id=outcome_id or f"outcome-{lead_id}",
        lead_id=lead_id,
        converted=converted,
        outcome_time=T0 + timedelta(days=days),
        recorded_at=T0 + timedelta(days=days, hours=1),
        features=features,
    )


async def _raw_features(database: Database, lead_id: str) -> tuple[bool, Any]:
    """Whether the stored ``features`` is SQL NULL, and its value."""
    statement = select(LeadOutcomeModel.features.is_(None), LeadOutcomeModel.features).where(
        LeadOutcomeModel.tenant_id == TENANT, LeadOutcomeModel.lead_id == lead_id
    )
    async with database.sessionmaker() as session:
        is_null, value = (await session.execute(statement)).one()
        return bool(is_null), value


async def test_every_field_round_trips(repo: LeadOutcomeRepository, database: Database) -> None:
    minus_seven = timezone(timedelta(hours=-7))
    outcome = OutcomeRecord(
        outcome_id="deal-77",
        lead_id="lead-ü",
        converted=True,
        outcome_time=datetime(2030, 5, 6, 0, 8, 9, 101112, tzinfo=minus_seven),
        recorded_at=datetime(2030, 5, 6, 1, 0, 0, 1, tzinfo=minus_seven),
        features={"visits": 12, "email_domain": "example.com", "tags": ["a"], "age": None},
    )

    stored = await repo.record(TENANT, outcome)

    expected = dataclasses.replace(
        outcome,
        outcome_time=datetime(2030, 5, 6, 7, 8, 9, 101112, tzinfo=UTC),
        recorded_at=datetime(2030, 5, 6, 8, 0, 0, 1, tzinfo=UTC),
    )
    assert stored == expected
    fetched = await repo.get(TENANT, "lead-ü")
    assert fetched == expected
    assert fetched is not None
    assert fetched.outcome_time.tzinfo is UTC
    assert fetched.recorded_at.tzinfo is UTC
    assert fetched.converted is True
    assert await _raw_features(database, "lead-ü") == (False, expected.features)


async def test_missing_features_are_stored_as_null(
    repo: LeadOutcomeRepository, database: Database
) -> None:
    await repo.record(TENANT, _outcome("lead-1", converted=False))

    fetched = await repo.get(TENANT, "lead-1")
    assert fetched == _outcome("lead-1", converted=False)
    assert fetched is not None
    assert fetched.converted is False
    assert fetched.features is None
    assert await _raw_features(database, "lead-1") == (True, None)


async def test_get_unknown_lead_is_none(repo: LeadOutcomeRepository) -> None:
    await repo.record(TENANT, _outcome("lead-1"))
    assert await repo.get(TENANT, "lead-2") is None


async def test_recording_again_replaces_the_outcome(
    repo: LeadOutcomeRepository, database: Database
) -> None:
    await repo.record(TENANT, _outcome("lead-1", converted=True, features={"visits": 1}))
    # Last write wins, even when the new outcome says it happened earlier.
    second = _outcome("lead-1", converted=False, days=-3, outcome_id="correction")

    assert await repo.record(TENANT, second) == second

    assert await repo.get(TENANT, "lead-1") == second
    assert await repo.list_all(TENANT) == [second]
    assert await repo.counts(TENANT) == (1, 0)
    assert await _raw_features(database, "lead-1") == (True, None)

    third = _outcome("lead-1", converted=True, days=2, features={"visits": 3})
    await repo.record(TENANT, third)
    assert await repo.get(TENANT, "lead-1") == third
    assert await repo.counts(TENANT) == (1, 1)


async def test_list_all_orders_by_outcome_time_then_lead(repo: LeadOutcomeRepository) -> None:
    assert await repo.list_all(TENANT) == []
    recorded = [
        _outcome("lead-c", days=2),
        _outcome("lead-b", days=0),
        _outcome("lead-z", days=-1, converted=False),
        _outcome("lead-a", days=2),
        _outcome("lead-d", days=0, features={"visits": 4}),
    ]
    for outcome in recorded:
        await repo.record(TENANT, outcome)

    listed = await repo.list_all(TENANT)
    assert [o.lead_id for o in listed] == ["lead-z", "lead-b", "lead-d", "lead-a", "lead-c"]
    assert sorted(listed, key=lambda o: o.lead_id) == sorted(recorded, key=lambda o: o.lead_id)
    limited = await repo.list_all(TENANT, limit=2)
    assert [o.lead_id for o in limited] == ["lead-z", "lead-b"]


async def test_counts(repo: LeadOutcomeRepository) -> None:
    assert await repo.counts(TENANT) == (0, 0)
    for i in range(7):
        await repo.record(TENANT, _outcome(f"lead-{i}", converted=i % 3 == 0))
    await repo.record("tenant-b", _outcome("lead-x", converted=True))

    assert await repo.counts(TENANT) == (7, 3)
    assert await repo.counts("tenant-b") == (1, 1)
    assert await repo.counts("tenant-c") == (0, 0)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"outcome_id": ""}, "outcome_id"),
        ({"lead_id": ""}, "lead_id"),
        ({"outcome_time": datetime(2030, 1, 1)}, "outcome_time must be timezone-aware"),
        ({"recorded_at": datetime(2030, 1, 1)}, "recorded_at must be timezone-aware"),
    ],
)
async def test_record_rejects_bad_outcomes(
    repo: LeadOutcomeRepository, changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        await repo.record(TENANT, dataclasses.replace(_outcome("lead-1"), **changes))
    assert await repo.counts(TENANT) == (0, 0)


async def test_other_methods_reject_bad_arguments(repo: LeadOutcomeRepository) -> None:
    with pytest.raises(ValueError, match="lead_id"):
        await repo.get(TENANT, "")
    with pytest.raises(ValueError, match="limit"):
        await repo.list_all(TENANT, limit=0)
