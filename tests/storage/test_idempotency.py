"""IdempotencyRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ai_orchestration.errors import ConflictError
from ai_orchestration.storage import (
    Database,
    IdempotencyRecord,
    IdempotencyRepository,
    compute_request_digest,
)
from tests.storage._support import FakeClock

TENANT = "tenant-a"
METHOD = "/crm.ai.v1.WorkflowService/StartRun"
DIGEST = compute_request_digest(b"start lead_qualification for lead 42")
OTHER_DIGEST = compute_request_digest(b"start content_generation for lead 42")
TTL = timedelta(hours=24)


@pytest.fixture
def repo(database: Database, clock: FakeClock) -> IdempotencyRepository:
    return IdempotencyRepository(database=database, clock=clock)


async def _put(
    repo: IdempotencyRepository,
    clock: FakeClock,
    *,
    request_id: str = "req-1",
    digest: str = DIGEST,
    response: bytes = b"\x00run/1\xff",
    ttl: timedelta = TTL,
    tenant_id: str = TENANT,
) -> IdempotencyRecord:
    return await repo.put(
        tenant_id,
        METHOD,
        request_id,
        request_digest=digest,
        response=response,
        expires_at=clock() + ttl,
        resource_name="runs/1",
    )


def test_digest_is_sha256_hex() -> None:
    assert compute_request_digest(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


async def test_put_then_get_returns_the_stored_record(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    stored = await _put(repo, clock)

    expected = IdempotencyRecord(
        tenant_id=TENANT,
        method=METHOD,
        request_id="req-1",
        request_digest=DIGEST,
        response=b"\x00run/1\xff",
        resource_name="runs/1",
        created_at=clock(),
        expires_at=clock() + TTL,
    )
    assert stored == expected
    assert await repo.get(TENANT, METHOD, "req-1") == expected


async def test_get_unknown_key_returns_none(repo: IdempotencyRepository, clock: FakeClock) -> None:
    await _put(repo, clock)
    assert await repo.get(TENANT, METHOD, "req-2") is None
    assert await repo.get(TENANT, "/crm.ai.v1.ScoringService/ScoreLead", "req-1") is None


async def test_same_request_replays_the_first_response(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    first = await _put(repo, clock, response=b"first")
    clock.advance(timedelta(minutes=5))

    replay = await _put(repo, clock, response=b"second", ttl=timedelta(hours=1))

    assert replay == first
    assert replay.response == b"first"
    assert await repo.get(TENANT, METHOD, "req-1") == first


async def test_reused_request_id_with_another_request_conflicts(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    first = await _put(repo, clock)

    with pytest.raises(ConflictError) as caught:
        await _put(repo, clock, digest=OTHER_DIGEST, response=b"other")

    assert caught.value.reason == "REQUEST_ID_REUSED"
    assert "use a new request_id" in caught.value.message
    assert caught.value.metadata == {"method": METHOD, "request_id": "req-1"}
    assert await repo.get(TENANT, METHOD, "req-1") == first


async def test_concurrent_puts_agree_on_one_record(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    responses = [f"response-{i}".encode() for i in range(6)]
    records = await asyncio.gather(*(_put(repo, clock, response=r) for r in responses))

    assert len({record.response for record in records}) == 1
    assert records[0].response in responses


async def test_concurrent_different_requests_let_exactly_one_win(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    digests = [compute_request_digest(f"request {i}".encode()) for i in range(6)]
    outcomes = await asyncio.gather(
        *(_put(repo, clock, digest=d) for d in digests), return_exceptions=True
    )

    winners = [o for o in outcomes if isinstance(o, IdempotencyRecord)]
    assert len(winners) == 1
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not winners[0])
    assert await repo.get(TENANT, METHOD, "req-1") == winners[0]


async def test_expired_record_is_absent(repo: IdempotencyRepository, clock: FakeClock) -> None:
    await _put(repo, clock, ttl=timedelta(minutes=10))

    clock.advance(timedelta(minutes=10) - timedelta(microseconds=1))
    assert await repo.get(TENANT, METHOD, "req-1") is not None
    clock.advance(timedelta(microseconds=1))
    assert await repo.get(TENANT, METHOD, "req-1") is None


async def test_expired_request_id_can_be_reused_for_another_request(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    await _put(repo, clock, ttl=timedelta(minutes=10))
    clock.advance(timedelta(minutes=10))

    fresh = await _put(repo, clock, digest=OTHER_DIGEST, response=b"fresh")

    assert (fresh.request_digest, fresh.response, fresh.created_at) == (
        OTHER_DIGEST,
        b"fresh",
        clock(),
    )
    assert await repo.get(TENANT, METHOD, "req-1") == fresh


async def test_purge_expired_deletes_only_expired_records(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    start = clock()
    await _put(repo, clock, request_id="short", ttl=timedelta(minutes=1))
    await _put(repo, clock, request_id="short-b", ttl=timedelta(minutes=1), tenant_id="tenant-b")
    await _put(repo, clock, request_id="exact", ttl=timedelta(minutes=2))
    await _put(repo, clock, request_id="long", ttl=timedelta(hours=1))
    await _put(repo, clock, request_id="long-b", ttl=timedelta(hours=1), tenant_id="tenant-b")

    assert await repo.purge_expired(start + timedelta(minutes=2)) == 3
    assert await repo.purge_expired(start + timedelta(minutes=2)) == 0

    assert await repo.get(TENANT, METHOD, "long") is not None
    assert await repo.get("tenant-b", METHOD, "long-b") is not None
    assert await repo.purge_expired(start + timedelta(hours=2)) == 2


async def test_timestamps_come_back_aware_utc(
    repo: IdempotencyRepository, clock: FakeClock
) -> None:
    plus_five = timezone(timedelta(hours=5))
    expires_local = datetime(2030, 1, 3, 9, 0, 0, 123456, tzinfo=plus_five)
    await repo.put(
        TENANT, METHOD, "req-1", request_digest=DIGEST, response=b"", expires_at=expires_local
    )

    record = await repo.get(TENANT, METHOD, "req-1")
    assert record is not None
    assert record.created_at.tzinfo is UTC
    assert record.expires_at.tzinfo is UTC
    assert record.created_at == clock()
    assert record.expires_at == expires_local
    assert record.expires_at.hour == 4
    assert record.resource_name is None


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"expires_at": datetime(2031, 1, 1)}, "timezone-aware"),
        ({"expires_at": datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)}, "not after now"),
        ({"request_digest": "ABC"}, "64 lowercase hex"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"method": ""}, "method"),
        ({"request_id": ""}, "request_id"),
    ],
)
async def test_put_rejects_bad_arguments(
    repo: IdempotencyRepository, changes: dict[str, object], complaint: str
) -> None:
    arguments: dict[str, object] = {
        "tenant_id": TENANT,
        "method": METHOD,
        "request_id": "req-1",
        "request_digest": DIGEST,
        "response": b"",
        "expires_at": datetime(2031, 1, 1, tzinfo=UTC),
        **changes,
    }
    with pytest.raises(ValueError, match=complaint):
        await repo.put(**arguments)  # type: ignore[arg-type]
    assert await repo.purge_expired(datetime(2100, 1, 1, tzinfo=UTC)) == 0
