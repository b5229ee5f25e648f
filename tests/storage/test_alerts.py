"""The alert log and the evaluation backlog, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ai_orchestration.insights import Citation, NewAlert
from ai_orchestration.storage import (
    AlertRepository,
    CustomerInsightRepository,
    Database,
    InteractionRepository,
)
from tests.storage._support import FakeClock
from tests.storage.test_interactions import _interaction, _new

COOLDOWN = timedelta(hours=1)


def _alert(interaction_id: str, kind: str = "churn_risk", customer: str = "cust-1") -> NewAlert:
    quote = Citation(interaction_id, "We are cancelling.", 0.9, 0, 18)
    return NewAlert(
        interaction_id, customer, kind, 3, "The customer spoke of cancelling.", (quote,)
    )


@pytest.fixture
def alerts(database: Database, clock: FakeClock) -> AlertRepository:
    return AlertRepository(database=database, clock=clock)


async def _ingest(database: Database, *ids: str, customer: str = "cust-1") -> None:
    repository = InteractionRepository(database=database)
    await repository.add(
        "acme", [_new(_interaction(i, f"Body {i}.", customer=customer)) for i in ids]
    )


async def test_backlog_and_sequences_without_gaps(
    database: Database, alerts: AlertRepository
) -> None:
    await _ingest(database, "e-1", "e-2", "e-3")
    pending = await alerts.pending(10, tenant_id="acme")
    assert [stored.interaction.interaction_id for _, stored in pending] == ["e-1", "e-2", "e-3"]
    assert await alerts.last_sequence("acme") == 0
    first = await alerts.commit(
        "acme",
        ["e-1", "e-2"],
        [_alert("e-1"), _alert("e-2", "competitor_mention")],
        cooldown=COOLDOWN,
    )
    assert [a.sequence for a in first] == [1, 2]
    assert [tenant for tenant, _ in await alerts.pending(10)] == ["acme"]  # e-3 is left
    second = await alerts.commit("acme", ["e-3"], [_alert("e-3", "escalation")], cooldown=COOLDOWN)
    assert [a.sequence for a in second] == [3]
    assert await alerts.last_sequence("acme") == 3
    assert [a.sequence for a in await alerts.read("acme", after=1, limit=10)] == [2, 3]
    assert await alerts.read("globex", after=0, limit=10) == []
    assert await alerts.pending(10) == []


async def test_one_alert_per_customer_kind_and_cooldown(
    database: Database, alerts: AlertRepository, clock: FakeClock
) -> None:
    await _ingest(database, "e-1", "e-2", "e-3", "e-4")
    await _ingest(database, "o-1", customer="cust-2")
    raised = await alerts.commit(
        "acme",
        ["e-1", "e-2", "o-1"],
        [_alert("e-1"), _alert("e-2"), _alert("o-1", customer="cust-2")],
        cooldown=COOLDOWN,
    )
    assert [(a.interaction_id, a.customer_id) for a in raised] == [
        ("e-1", "cust-1"),
        ("o-1", "cust-2"),
    ]
    clock.advance(timedelta(minutes=30))
    assert await alerts.commit("acme", ["e-3"], [_alert("e-3")], cooldown=COOLDOWN) == []
    clock.advance(timedelta(minutes=31))
    [later] = await alerts.commit("acme", ["e-4"], [_alert("e-4")], cooldown=COOLDOWN)
    assert later.sequence == 3 and later.evidence[0].quote == "We are cancelling."


async def test_an_interaction_is_evaluated_once(
    database: Database, alerts: AlertRepository
) -> None:
    await _ingest(database, "e-1")
    results = await asyncio.gather(
        alerts.commit("acme", ["e-1"], [_alert("e-1")], cooldown=timedelta(0)),
        alerts.commit("acme", ["e-1"], [_alert("e-1")], cooldown=timedelta(0)),
    )
    assert sorted(len(r) for r in results) == [0, 1]
    assert await alerts.last_sequence("acme") == 1


async def test_erasure_removes_the_customers_alerts(
    database: Database, alerts: AlertRepository
) -> None:
    await _ingest(database, "e-1")
    await alerts.commit("acme", ["e-1"], [_alert("e-1")], cooldown=COOLDOWN)
    _, counts = await CustomerInsightRepository(database=database).erase(
        "acme", "cust-1", erased_by="svc"
    )
    assert counts.alerts == 1
    assert await alerts.read("acme", after=0, limit=10) == []


async def test_an_alert_appended_once_under_its_id_is_not_appended_again(
    alerts: AlertRepository,
) -> None:
    first = await alerts.append_once("t1", _alert("", kind="escalation"), alert_id="esc-1")
    again = await alerts.append_once("t1", _alert("", kind="escalation"), alert_id="esc-1")
    other = await alerts.append_once("t2", _alert("", kind="escalation"), alert_id="esc-1")
    assert first is not None and first.alert_id == "esc-1" and first.sequence == 1
    assert again is None
    assert other is not None and other.sequence == 1  # another tenant's log
    assert [a.alert_id for a in await alerts.read("t1", after=0, limit=10)] == ["esc-1"]
    racing = await asyncio.gather(
        *(
            alerts.append_once("t1", _alert("", kind="escalation"), alert_id="esc-2")
            for _ in range(4)
        )
    )
    assert sum(r is not None for r in racing) == 1
    assert [a.sequence for a in await alerts.read("t1", after=0, limit=10)] == [1, 2]
