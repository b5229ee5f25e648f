"""The alert sweep on SQLite and PostgreSQL: what a crash left undone is done once."""

from __future__ import annotations

from datetime import timedelta

from ai_orchestration.insights import (
    ACT_AGAIN_PAGE,
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


async def test_the_sweep_pages_past_alerts_no_tenant_wants_a_run_for(
    database: Database, clock: FakeClock
) -> None:
    """Alerts the tenant's follow-up settings skip keep no run forever; more of them than a
    sweep's page must not hide a later alert that a crash left without its run."""
    alerts = AlertRepository(database=database, clock=clock)
    unwanted = [
        NewAlert(f"e-{n}", f"cust-{n}", "competitor_mention", 1, "Competitor.", ())
        for n in range(2 * ACT_AGAIN_PAGE + 50)
    ]
    await alerts.append("acme", unwanted)
    clock.advance(timedelta(seconds=1))
    wanted = NewAlert("e-x", "cust-x", "escalation", 2, "Escalation.", ())
    [orphan] = await alerts.append("acme", [wanted])
    looked_at: list[str] = []

    async def act(tenant_id: str, raised: list[StoredAlert]) -> None:
        for alert in raised:  # as the follow-up starter does: a run only for escalations
            looked_at.append(alert.alert_id)
            if alert.kind == "escalation":
                await alerts.set_run(tenant_id, alert.alert_id, f"run-{alert.alert_id}")

    evaluator = AlertEvaluator(
        backlog=alerts,
        histories=InteractionRepository(database=database, clock=clock),
        settings=InsightSettingsStore(backend=TenantSettingsRepository(database=database)),
        announce=_noop,
        on_raised=act,
        unstarted=alerts,
        clock=clock,
    )
    clock.advance(timedelta(seconds=11))
    for _ in range(3):
        await evaluator.sweep()
    assert orphan.alert_id in looked_at
    assert len(looked_at) == len(unwanted) + 1  # each looked at once across the three sweeps
    assert (await alerts.read("acme", after=0, limit=1000))[-1].run_id == f"run-{orphan.alert_id}"
    looked_at.clear()
    await evaluator.sweep()  # a new round from the window's start
    assert len(looked_at) == ACT_AGAIN_PAGE and orphan.alert_id not in looked_at
