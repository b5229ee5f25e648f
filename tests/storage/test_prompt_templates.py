"""PromptTemplateRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest

from ai_orchestration.storage import (
    Database,
    PromptTemplateRepository,
    StoredPromptExperiment,
    StoredPromptTemplate,
)
from tests.storage._support import FakeClock

NAME = "lead_analysis"


@pytest.fixture
def repo(database: Database, clock: FakeClock) -> PromptTemplateRepository:
    return PromptTemplateRepository(database=database, clock=clock)


async def _publish(
    repo: PromptTemplateRepository, tenant_id: str | None, text: str, name: str = NAME
) -> int:
    return (await repo.add(tenant_id, name, system="sys", user=text)).version


async def test_versions_count_from_one_per_name(repo: PromptTemplateRepository) -> None:
    assert [await _publish(repo, None, f"g{i}") for i in range(3)] == [1, 2, 3]
    assert await _publish(repo, None, "other", name="outreach_draft") == 1

    stored = await repo.get(None, NAME, 2)
    assert stored is not None
    assert (stored.tenant_id, stored.name, stored.version, stored.user) == (None, NAME, 2, "g1")


async def test_add_returns_what_get_reads(repo: PromptTemplateRepository, clock: FakeClock) -> None:
    added = await repo.add("tenant-a", NAME, system="Be brief. {{json}}", user="Lead: {lead}")

    assert added == StoredPromptTemplate(
        tenant_id="tenant-a",
        name=NAME,
        version=1,
        system="Be brief. {{json}}",
        user="Lead: {lead}",
        created_at=clock(),
    )
    assert await repo.get("tenant-a", NAME, 1) == added
    assert added.created_at.tzinfo is UTC


async def test_tenant_version_is_numbered_after_the_global_ones(
    repo: PromptTemplateRepository,
) -> None:
    await _publish(repo, None, "g1")
    await _publish(repo, None, "g2")

    assert await _publish(repo, "tenant-a", "a3") == 3
    assert await _publish(repo, "tenant-a", "a4") == 4
    # Another tenant's overrides do not move anyone else's numbers.
    assert await _publish(repo, "tenant-b", "b3") == 3
    assert await _publish(repo, None, "g3") == 3


async def test_override_shadows_the_global_template_for_its_tenant_only(
    repo: PromptTemplateRepository,
) -> None:
    await _publish(repo, None, "g1")
    await _publish(repo, "tenant-a", "a2")
    await _publish(repo, None, "g2")

    latest_a = await repo.latest("tenant-a", NAME)
    latest_b = await repo.latest("tenant-b", NAME)
    latest_global = await repo.latest(None, NAME)
    assert latest_a is not None and (latest_a.tenant_id, latest_a.user) == ("tenant-a", "a2")
    assert latest_b is not None and (latest_b.tenant_id, latest_b.user) == (None, "g2")
    assert latest_global is not None and latest_global.user == "g2"

    assert [(t.tenant_id, t.version) for t in await repo.list_versions("tenant-a", NAME)] == [
        ("tenant-a", 2)
    ]
    assert [(t.tenant_id, t.version) for t in await repo.list_versions("tenant-b", NAME)] == [
        (None, 1),
        (None, 2),
    ]


async def test_get_prefers_the_tenant_and_keeps_older_global_versions_readable(
    repo: PromptTemplateRepository,
) -> None:
    await _publish(repo, None, "g1")
    await _publish(repo, "tenant-a", "a2")
    await _publish(repo, None, "g2")

    # Calls made before the override recorded global version 1: still readable.
    v1 = await repo.get("tenant-a", NAME, 1)
    assert v1 is not None and (v1.tenant_id, v1.user) == (None, "g1")
    v2_a = await repo.get("tenant-a", NAME, 2)
    assert v2_a is not None and (v2_a.tenant_id, v2_a.user) == ("tenant-a", "a2")
    v2_b = await repo.get("tenant-b", NAME, 2)
    assert v2_b is not None and (v2_b.tenant_id, v2_b.user) == (None, "g2")
    assert await repo.get("tenant-a", NAME, 9) is None


async def test_a_tenant_never_reads_another_tenants_templates(
    repo: PromptTemplateRepository,
) -> None:
    await _publish(repo, "tenant-a", "secret", name="private_prompt")

    assert await repo.latest("tenant-b", "private_prompt") is None
    assert await repo.get("tenant-b", "private_prompt", 1) is None
    assert await repo.list_versions("tenant-b", "private_prompt") == []
    assert await repo.latest(None, "private_prompt") is None


async def test_concurrent_publishes_get_distinct_versions(
    repo: PromptTemplateRepository,
) -> None:
    versions = await asyncio.gather(*(_publish(repo, "tenant-a", f"a{i}") for i in range(8)))

    assert sorted(versions) == list(range(1, 9))
    texts = {t.version: t.user for t in await repo.list_versions("tenant-a", NAME)}
    assert {texts[v] for v in versions} == {f"a{i}" for i in range(8)}


async def test_add_global_if_absent_is_idempotent_and_never_overwrites(
    repo: PromptTemplateRepository,
) -> None:
    assert await repo.add_global_if_absent(NAME, 1, system="s", user="first") is True
    assert await repo.add_global_if_absent(NAME, 1, system="s", user="changed") is False

    outcomes = await asyncio.gather(
        *(repo.add_global_if_absent("insight_summary", 1, system="", user="u") for _ in range(5))
    )
    assert sorted(outcomes) == [False, False, False, False, True]
    stored = await repo.get(None, NAME, 1)
    assert stored is not None and stored.user == "first"
    assert [t.version for t in await repo.list_versions(None, "insight_summary")] == [1]


async def test_experiments_round_trip_per_owner(
    repo: PromptTemplateRepository, clock: FakeClock
) -> None:
    await repo.set_experiment("tenant-a", NAME, [(3, 0.25), (1, 0.75)])

    assert await repo.get_experiment("tenant-a", NAME) == StoredPromptExperiment(
        tenant_id="tenant-a", name=NAME, arms=((1, 0.75), (3, 0.25)), updated_at=clock()
    )
    assert await repo.get_experiment("tenant-b", NAME) is None
    assert await repo.get_experiment(None, NAME) is None

    clock.advance(timedelta(minutes=5))
    await repo.set_experiment("tenant-a", NAME, [(2, 1.0)])
    await repo.set_experiment(None, NAME, [(1, 0.5), (2, 0.5)])

    replaced = await repo.get_experiment("tenant-a", NAME)
    assert replaced is not None
    assert (replaced.arms, replaced.updated_at) == (((2, 1.0),), clock())
    global_split = await repo.get_experiment(None, NAME)
    assert global_split is not None and global_split.tenant_id is None

    assert await repo.clear_experiment("tenant-a", NAME) is True
    assert await repo.clear_experiment("tenant-a", NAME) is False
    assert await repo.get_experiment("tenant-a", NAME) is None
    assert await repo.get_experiment(None, NAME) is not None


@pytest.mark.parametrize(("tenant_id", "complaint"), [("", "tenant_id"), ("*", "reserved")])
async def test_rejects_empty_and_reserved_tenants(
    repo: PromptTemplateRepository, tenant_id: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        await repo.add(tenant_id, NAME, system="", user="u")
    with pytest.raises(ValueError, match=complaint):
        await repo.latest(tenant_id, NAME)
    assert await repo.list_versions(None, NAME) == []


async def test_rejects_bad_arguments(repo: PromptTemplateRepository) -> None:
    with pytest.raises(ValueError, match="name"):
        await repo.add(None, "", system="", user="u")
    with pytest.raises(ValueError, match="version"):
        await repo.add_global_if_absent(NAME, 0, system="", user="u")
    with pytest.raises(ValueError, match="clear it"):
        await repo.set_experiment("tenant-a", NAME, [])
