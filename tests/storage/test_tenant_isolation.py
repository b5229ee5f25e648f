"""Tenant isolation: what one tenant writes, no repository method shows or changes for another."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ai_orchestration.storage import (
    Database,
    IdempotencyRepository,
    TenantSettingsRepository,
    compute_request_digest,
)
from tests.storage._support import FakeClock

A, B = "tenant-a", "tenant-b"
METHOD = "/crm.ai.v1.InsightService/IngestInteractions"
# Housekeeping deletes by expiry across tenants and returns only a count.
CROSS_TENANT_METHODS = {"purge_expired"}


def _public_methods(cls: type) -> list[tuple[str, Callable[..., Any]]]:
    return [
        (name, member)
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    ]


@pytest.mark.parametrize("cls", [IdempotencyRepository, TenantSettingsRepository])
def test_every_method_takes_the_tenant_first_and_requires_it(cls: type) -> None:
    methods = [(n, m) for n, m in _public_methods(cls) if n not in CROSS_TENANT_METHODS]
    assert methods
    for name, method in methods:
        first = list(inspect.signature(method).parameters.values())[1]
        assert (name, first.name, first.default) == (name, "tenant_id", inspect.Parameter.empty)


async def test_idempotency_records_are_per_tenant(database: Database, clock: FakeClock) -> None:
    repo = IdempotencyRepository(database=database, clock=clock)
    expires_at = clock() + timedelta(hours=1)
    digest_a = compute_request_digest(b"a's request")
    digest_b = compute_request_digest(b"b's request")

    record_a = await repo.put(
        A, METHOD, "req-1", request_digest=digest_a, response=b"a", expires_at=expires_at
    )
    assert await repo.get(B, METHOD, "req-1") is None

    # Same request_id, different body, other tenant: a separate record, not a conflict.
    record_b = await repo.put(
        B, METHOD, "req-1", request_digest=digest_b, response=b"b", expires_at=expires_at
    )
    assert (record_b.tenant_id, record_b.response) == (B, b"b")
    assert await repo.get(A, METHOD, "req-1") == record_a
    assert await repo.get(B, METHOD, "req-1") == record_b


async def test_settings_are_per_tenant(database: Database, clock: FakeClock) -> None:
    repo = TenantSettingsRepository(database=database, clock=clock)
    await repo.set(A, "llm.model", "local")
    await repo.set(A, "only-a", True)

    assert await repo.get(B, "llm.model") is None
    assert await repo.list(B) == {}
    assert await repo.delete(B, "llm.model") is False

    await repo.set(B, "llm.model", "remote")
    assert await repo.get(A, "llm.model") == "local"
    assert await repo.get(B, "llm.model") == "remote"
    assert await repo.list(A) == {"llm.model": "local", "only-a": True}
    assert await repo.list(B) == {"llm.model": "remote"}

    assert await repo.delete(B, "llm.model") is True
    assert await repo.get(A, "llm.model") == "local"


@pytest.mark.parametrize(
    ("repository", "method", "arguments"),
    [
        ("idempotency", "get", (METHOD, "req-1")),
        ("settings", "get", ("k",)),
        ("settings", "set", ("k", 1)),
        ("settings", "list", ()),
        ("settings", "delete", ("k",)),
    ],
)
async def test_blank_tenant_is_refused(
    database: Database, repository: str, method: str, arguments: tuple[Any, ...]
) -> None:
    repo = (
        IdempotencyRepository(database=database)
        if repository == "idempotency"
        else TenantSettingsRepository(database=database)
    )
    with pytest.raises(ValueError, match="tenant_id"):
        await getattr(repo, method)("", *arguments)
