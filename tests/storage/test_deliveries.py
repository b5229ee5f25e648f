"""DeliveryLedger conformance: each message is handed over once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from ai_orchestration.storage import Database, DeliveryLedger, StoredDelivery
from ai_orchestration.workflows import DeliveryRequest, DeliverySink
from tests.storage._support import FakeClock

TENANT = "tenant-a"
OTHER = "tenant-b"
REQUEST = DeliveryRequest(
    idempotency_key="run-1:deliver",
    tenant_id=TENANT,
    run_id="run-1",
    channel="CHANNEL_EMAIL",
    recipient={"name": "Ada Lovelace", "email": "ada@example.com"},
    draft={"subject": "Hello", "body": "Dear Ada, ...", "channel": "CHANNEL_EMAIL"},
)


@pytest.fixture
def ledger(database: Database, clock: FakeClock) -> DeliveryLedger:
    return DeliveryLedger(database=database, clock=clock)


async def test_a_key_is_delivered_once(ledger: DeliveryLedger, clock: FakeClock) -> None:
    sink: DeliverySink = ledger  # what the workflows see (mypy checks the protocol)
    assert await sink.deliver(REQUEST) is True
    changed = dataclasses.replace(REQUEST, draft={"subject": "Changed", "body": "-"})
    assert await ledger.deliver(REQUEST) is False
    assert await ledger.deliver(changed) is False

    assert await ledger.list_for_run(TENANT, "run-1") == [
        StoredDelivery(
            tenant_id=TENANT,
            idempotency_key="run-1:deliver",
            run_id="run-1",
            channel="CHANNEL_EMAIL",
            recipient=REQUEST.recipient,
            draft=REQUEST.draft,  # the first hand-off stands
            created_at=clock.now,
        )
    ]


async def test_concurrent_deliveries_of_one_key_hand_it_over_once(
    database_url: str, database: Database, clock: FakeClock
) -> None:
    handles = [Database.from_url(database_url) for _ in range(2)]
    try:
        ledgers = [DeliveryLedger(database=db, clock=clock) for db in (database, *handles)]
        outcomes = await asyncio.gather(
            *(ledgers[i % len(ledgers)].deliver(REQUEST) for i in range(10))
        )
    finally:
        await asyncio.gather(*(handle.close() for handle in handles))

    assert sorted(outcomes) == [False] * 9 + [True]
    assert len(await DeliveryLedger(database=database).list_for_run(TENANT, "run-1")) == 1


async def test_keys_and_listings_are_per_tenant(ledger: DeliveryLedger) -> None:
    theirs = dataclasses.replace(REQUEST, tenant_id=OTHER)

    assert await ledger.deliver(REQUEST) is True
    assert await ledger.deliver(theirs) is True  # another tenant's key never blocks ours

    assert [d.tenant_id for d in await ledger.list_for_run(TENANT, "run-1")] == [TENANT]
    assert [d.tenant_id for d in await ledger.list_for_run(OTHER, "run-1")] == [OTHER]
    assert await ledger.list_for_run(TENANT, "run-2") == []


async def test_several_messages_of_a_run_are_listed_oldest_first(
    ledger: DeliveryLedger, clock: FakeClock
) -> None:
    await ledger.deliver(REQUEST)
    clock.advance(timedelta(seconds=1))
    follow_up = dataclasses.replace(
        REQUEST, idempotency_key="run-1:follow-up", channel="CHANNEL_SMS"
    )
    await ledger.deliver(follow_up)

    listed = await ledger.list_for_run(TENANT, "run-1")
    assert [(d.idempotency_key, d.channel) for d in listed] == [
        ("run-1:deliver", "CHANNEL_EMAIL"),
        ("run-1:follow-up", "CHANNEL_SMS"),
    ]


@pytest.mark.parametrize("field", ["idempotency_key", "tenant_id", "run_id", "channel"])
async def test_empty_key_parts_are_refused(ledger: DeliveryLedger, field: str) -> None:
    with pytest.raises(ValueError):
        empty: dict[str, Any] = {field: ""}
        await ledger.deliver(dataclasses.replace(REQUEST, **empty))
