"""DecisionPolicyStore: per-tenant thresholds over the real tenant settings table (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.storage import Database, TenantSettingsRepository
from ai_orchestration.workflows.graphs import DecisionPolicy, DecisionPolicyStore, checked_policy
from ai_orchestration.workflows.graphs._policy import SETTINGS_KEY


@pytest.fixture
async def repository(tmp_path: Path) -> AsyncIterator[TenantSettingsRepository]:
    async with Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'policy.db'}") as database:
        await database.migrate()
        yield TenantSettingsRepository(database=database)


async def test_stored_thresholds_are_the_tenants_own(
    repository: TenantSettingsRepository,
) -> None:
    defaults = DecisionPolicy(min_confidence=0.5)
    store = DecisionPolicyStore(repository, defaults=defaults)
    mine = replace(defaults, high_value_deal=5_000.0)
    await store.put("alpha", mine)
    assert await store.get("alpha") == mine
    assert await store.get("beta") == defaults
    # Another replica (its own store, nothing cached) reads what this one wrote.
    assert await DecisionPolicyStore(repository, defaults=defaults).get("alpha") == mine


async def test_a_partial_or_corrupt_document_falls_back_to_the_defaults(
    repository: TenantSettingsRepository,
) -> None:
    defaults = DecisionPolicy()
    await repository.set("older", SETTINGS_KEY, {"min_confidence": 0.7, "stale_factor": "x"})
    await repository.set("broken", SETTINGS_KEY, {"min_confidence": 7.0})
    store = DecisionPolicyStore(repository, defaults=defaults)
    assert await store.get("older") == replace(defaults, min_confidence=0.7)
    assert await store.get("broken") == defaults


def test_every_threshold_out_of_range_is_reported_at_once() -> None:
    values = {
        "min_confidence": -0.1,
        "high_value_deal": 0.0,
        "clear_margin_points": 15.0,
        "stale_touch_days": 0.0,
        "stale_factor": 0.8,
    }
    with pytest.raises(InvalidArgumentError) as caught:
        checked_policy(values, field_prefix="settings.")
    assert {v.field for v in caught.value.violations} == {
        "settings.min_confidence",
        "settings.high_value_deal",
        "settings.stale_touch_days",
    }
