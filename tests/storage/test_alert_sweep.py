"""The alert sweep on SQLite and PostgreSQL: what a crash left undone is done once."""

from __future__ import annotations

from datetime import timedelta

from ai_orchestration.insights import (
    AlertEvaluator,
    InsightSettingsStore,
    NewAlert,
    StoredAlert,
)
from ai_orchestration.storage import (
    AlertRepository,
    Database,
    InteractionRepository,
    TenantSettingsRepository,
)
from tests.storage._support import FakeClock
from tests.storage.test_interactions import _interaction, _new

ANGRY = "This is unacceptable. We are cancelling the contract. Our lawyers will be in touch."


async def _noop(tenant_id: str, sequence: int) -> None:
    return None


async def test_the_sweep_evaluates_what_a_crash_left_and_acts_on_alerts_again(
    database: Database, clock: FakeClock
) -> None:
    interactions = InteractionRepository(database=database, clock=clock)
    alerts = AlertRepository(database=database, clock=clock)
    acted: list[tuple[str, list[str]]] = []

    async def act(tenant_id: str, raised: list[StoredAlert]) -> None:
        acted.append((tenant_id, [a.alert_id for a in raised]))
        for alert in raised:  # as the follow-up starter does once its run exists
            await alerts.set_run(tenant_id, alert.alert_id, f"run-{alert.alert_id}")

    evaluator = AlertEvaluator(
        backlog=alerts,
        histories=interactions,
        settings=InsightSettingsStore(backend=TenantSettingsRepository(database=database)),
        announce=_noop,
        on_raised=act,
        unstarted=alerts,
        clock=clock,
    )
    # A replica committed an angry e-mail and died before evaluating it.
    await interactions.add("acme", [_new(_interaction("e-1", ANGRY))])
    assert await evaluator.sweep() == 0  # too young: its own stream may still evaluate it
    clock.advance(timedelta(seconds=11))
    raised = await evaluator.sweep()
    assert raised >= 2
    assert await evaluator.sweep() == 0  # evaluated once
    # Another replica appended an alert and died before acting on it.
    await interactions.add("acme", [_new(_interaction("e-2", "Fine.", customer="cust-2"))])
    orphan = NewAlert("e-2", "cust-2", "escalation", 2, "Escalation.", ())
    [stored] = await alerts.commit("acme", ["e-2"], [orphan], cooldown=timedelta(0))
    acted.clear()
    clock.advance(timedelta(seconds=11))
    await evaluator.sweep()
    assert acted == [("acme", [stored.alert_id])]
    acted.clear()
    await evaluator.sweep()  # it has its run now
    assert acted == []
    clock.advance(timedelta(hours=2))
    assert (
        await alerts.without_run(
            raised_after=clock() - timedelta(hours=3), raised_before=clock(), limit=10
        )
        == []
    )
