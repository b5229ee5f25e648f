"""WatchAlerts over real gRPC on SQLite and PostgreSQL: replay after a sequence, then live
alerts, no gap and no duplicate; filters; tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import grpc.aio
from crm.ai.v1 import (
    insight_pb2,
    insight_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from google.protobuf.field_mask_pb2 import FieldMask

from ai_orchestration.insights import Citation, NewAlert, StoredAlert
from ai_orchestration.server import Server
from ai_orchestration.server._insights import follow_ups
from ai_orchestration.storage import DeliveryLedger
from tests.api._leads import metadata
from tests.api.test_insight_ingest import interaction, stream
from tests.conftest import TokenFactory
from tests.fixtures.llm_server import LlmTestServer
from tests.storage.test_interactions import _interaction, _new

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = insight_pb2_grpc.InsightServiceAsyncStub

Alert = insight_pb2.Alert
RunState = workflow_pb2.Run.State


async def _raise(
    server: Server, stub: Stub, token: TokenFactory, count: int, *, tenant: str = "acme"
) -> None:
    """``count`` alerts in the tenant's log, alternating kinds and customers (appended as the
    alert rules would, on interactions stored without going through them)."""
    ids = [f"x-{tenant}-{n}" for n in range(count)]
    customers = [f"cust-{n % 2}" for n in range(count)]
    assert server.insights is not None
    await server.insights.interactions.add(
        tenant,
        [_new(_interaction(i, "Body.", customer=c)) for i, c in zip(ids, customers, strict=True)],
    )
    kinds = ["churn_risk", "escalation"]
    alerts = [
        NewAlert(i, c, kinds[n % 2], 1 + n % 3, f"Alert {n}.", (Citation(i, "Body.", 1.0, 0, 5),))
        for n, (i, c) in enumerate(zip(ids, customers, strict=True))
    ]
    await server.insights.alerts.commit(tenant, ids, alerts, cooldown=timedelta(0))


async def _take(
    calls: AsyncIterable[insight_pb2.Alert], count: int, seconds: float = 10
) -> list[insight_pb2.Alert]:
    got: list[insight_pb2.Alert] = []
    async with asyncio.timeout(seconds):
        async for alert in calls:
            got.append(alert)
            if len(got) == count:
                break
    return got


async def test_replay_then_live_without_gap_or_duplicate(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    md = metadata(token(roles=["insight.reader"]))
    await _raise(insight_server, stub, token, 6)
    for after in range(1, 6):  # resuming after any sequence replays exactly the later ones
        again = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(after_sequence=after), metadata=md)
        assert [a.sequence for a in await _take(again, 6 - after)] == list(range(after + 1, 7))
        again.cancel()
    call = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(after_sequence=2), metadata=md)
    replayed = await _take(call, 4)
    assert [a.sequence for a in replayed] == [3, 4, 5, 6]
    assert replayed[0].evidence[0].interaction_id == "x-acme-2"
    await _raise(insight_server, stub, token, 0)  # nothing new
    more = asyncio.ensure_future(_take(call, 1))
    await asyncio.sleep(0.2)
    assert not more.done()
    await _raise_more(insight_server, stub, token)
    [live] = await more
    assert live.sequence == 7 and live.message == "Live."
    call.cancel()


async def test_from_start_replays_the_whole_log_and_zero_follows_from_now(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    md = metadata(token(roles=["insight.reader"]))
    await _raise(insight_server, stub, token, 3)
    history = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(from_start=True), metadata=md)
    now_on = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(), metadata=md)
    assert [a.sequence for a in await _take(history, 3)] == [1, 2, 3]
    first_live = asyncio.ensure_future(_take(now_on, 1))
    await asyncio.sleep(0.5)  # the live-only watcher has subscribed and read the log's end
    assert not first_live.done()
    await _raise_more(insight_server, stub, token)
    assert [a.sequence for a in await _take(history, 1)] == [4]
    assert [a.sequence for a in await first_live] == [4]
    # `from_start` is ignored when a sequence is given.
    later = stub.WatchAlerts(
        insight_pb2.WatchAlertsRequest(after_sequence=3, from_start=True), metadata=md
    )
    assert [a.sequence for a in await _take(later, 1)] == [4]
    for call in (history, now_on, later):
        call.cancel()


async def _raise_more(server: Server, stub: Stub, token: TokenFactory) -> None:
    assert server.insights is not None
    await server.insights.interactions.add("acme", [_new(_interaction("live-1", "Body."))])
    alert = NewAlert("live-1", "cust-1", "churn_risk", 3, "Live.", ())
    await server.insights.alerts.commit("acme", ["live-1"], [alert], cooldown=timedelta(0))


async def test_filters_and_tenants(stub: Stub, insight_server: Server, token: TokenFactory) -> None:
    await _raise(insight_server, stub, token, 6)
    await _raise(insight_server, stub, token, 2, tenant="globex")
    md = metadata(token(roles=["insight.reader"]))
    everything = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(after_sequence=1), metadata=md)
    all_but_first = await _take(everything, 5)
    everything.cancel()
    assert [a.sequence for a in all_but_first] == [2, 3, 4, 5, 6]
    filtered = stub.WatchAlerts(
        insight_pb2.WatchAlertsRequest(
            after_sequence=1,
            customer_ids=["cust-0"],
            kinds=[Alert.KIND_CHURN_RISK],
            min_severity=insight_pb2.SEVERITY_MEDIUM,
        ),
        metadata=md,
    )
    matches = await _take(filtered, 2)
    filtered.cancel()
    # Raised: n = 0..5 as sequence n + 1, customer cust-(n % 2), churn risk for even n,
    # severity 1 + n % 3: after sequence 1, n = 2 (HIGH) and n = 4 (MEDIUM) pass.
    assert [a.sequence for a in matches] == [3, 5]
    assert {(a.customer_id, a.kind) for a in matches} == {("cust-0", Alert.KIND_CHURN_RISK)}
    theirs = stub.WatchAlerts(
        insight_pb2.WatchAlertsRequest(after_sequence=1),
        metadata=metadata(token(tenant_id="globex", roles=["insight.reader"])),
    )
    [other] = await _take(theirs, 1)
    theirs.cancel()
    assert other.sequence == 2 and other.evidence[0].interaction_id == "x-globex-1"


async def test_an_angry_email_raises_alerts_watchers_see_at_once(
    stub: Stub, token: TokenFactory
) -> None:
    reader = metadata(token(roles=["insight.reader"]))
    watch = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(), metadata=reader)
    first = asyncio.ensure_future(_take(watch, 1))
    await asyncio.sleep(0.3)  # the watcher is following the log from its current end
    writer = metadata(token(roles=["insight.writer"]))
    polite = await stub.IngestInteractions(
        stream(
            interaction("p-1", "Thanks for the quick fix, please send the invoice.", days=1),
            interaction("p-2", "We will not cancel; the team is happy with the rollout.", days=2),
        ),
        metadata=writer,
    )
    assert (polite.ingested, polite.alerts_raised) == (2, 0)
    angry = await stub.IngestInteractions(
        stream(
            interaction(
                "a-1",
                "This is unacceptable. Our lawyers will be in touch and we are cancelling "
                "the contract at the end of the month.",
                days=3,
            )
        ),
        metadata=writer,
    )
    assert angry.alerts_raised >= 2
    [alert] = await first
    watch.cancel()
    assert alert.customer_id == "cust-1"
    assert alert.evidence and alert.evidence[0].interaction_id == "a-1"
    assert alert.kind in {
        Alert.KIND_CHURN_RISK,
        Alert.KIND_ESCALATION,
        Alert.KIND_NEGATIVE_SENTIMENT,
    }
    # The same anger again within the cooldown raises nothing new.
    again = await stub.IngestInteractions(
        stream(
            interaction("a-2", "Unacceptable. We are cancelling. Lawyers are involved.", days=4)
        ),
        metadata=writer,
    )
    assert again.alerts_raised == 0


async def test_the_llm_budget_threshold_becomes_an_alert(
    stub: Stub, insight_server: Server, llm_server: LlmTestServer, token: TokenFactory
) -> None:
    admin = metadata(token(roles=["admin"]))
    async with grpc.aio.insecure_channel(insight_server.address) as channel:
        usage = usage_pb2_grpc.UsageServiceStub(channel)
        budget = usage_pb2.Budget(monthly_token_limit=1_000_000, soft_threshold=0.0001)
        await usage.SetBudget(usage_pb2.SetBudgetRequest(budget=budget), metadata=admin)
    watch = stub.WatchAlerts(
        insight_pb2.WatchAlertsRequest(kinds=[Alert.KIND_BUDGET_THRESHOLD]), metadata=admin
    )
    first = asyncio.ensure_future(_take(watch, 1))
    await asyncio.sleep(0.3)
    await stub.IngestInteractions(
        stream(interaction("b-1", "The renewal is fine.")), metadata=admin
    )
    llm_server.reply_with("It is fine [1].")
    asked = stub.AskCustomer(
        insight_pb2.AskCustomerRequest(customer_id="cust-1", question="Is the renewal fine?"),
        metadata=admin,
    )
    assert [chunk async for chunk in asked]
    [alert] = await first
    watch.cancel()
    assert alert.kind == Alert.KIND_BUDGET_THRESHOLD
    assert alert.customer_id == "" and "of 1,000,000 tokens" in alert.message


async def test_an_alert_starts_one_follow_up_that_waits_for_review(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    admin = metadata(token(roles=["admin"]))
    follow_up = insight_pb2.FollowUpSettings(
        kinds=[Alert.KIND_CHURN_RISK], min_severity=insight_pb2.SEVERITY_HIGH
    )
    await stub.UpdateInsightSettings(
        insight_pb2.UpdateInsightSettingsRequest(
            settings=insight_pb2.InsightSettings(follow_up=follow_up),
            update_mask=FieldMask(paths=["follow_up"]),
        ),
        metadata=admin,
    )
    reply = await stub.IngestInteractions(
        stream(
            interaction(
                "f-1",
                "We are not renewing. We will cancel the contract at the end of the month.",
                customer="cust-9",
                days=(datetime.now(UTC) - datetime(2026, 5, 4, tzinfo=UTC)).days,
            )
        ),
        metadata=admin,
    )
    assert reply.alerts_raised >= 1
    assert insight_server.insights is not None
    churn = await _with_run(insight_server, "churn_risk")
    async with grpc.aio.insecure_channel(insight_server.address) as channel:
        runs = workflow_pb2_grpc.WorkflowServiceStub(channel)
        run = await _run_until(runs, admin, churn.run_id, {RunState.STATE_WAITING_FOR_INPUT})
        interrupt = run.pending_interrupt
        assert workflow_pb2.Interrupt.REASON_CHURN_RISK in interrupt.reasons
        assert interrupt.proposal.evidence[0].interaction_id == "f-1"
        approval = workflow_pb2.Approval(
            override_failed_checks=bool(interrupt.proposal.draft.failed_checks)
        )
        await runs.ResumeRun(
            workflow_pb2.ResumeRunRequest(
                run_id=run.run_id, interrupt_id=interrupt.interrupt_id, approve=approval
            ),
            metadata=admin,
        )
        done = await _run_until(runs, admin, run.run_id, {RunState.STATE_SUCCEEDED})
        assert done.output.customer_follow_up.delivered
        # The same alert acted on again (a retry, another replica) finds the same run.
        assert insight_server.insights is not None and insight_server.workflows is not None
        stored = await insight_server.insights.alerts.read("acme", after=0, limit=100)
        again = follow_ups(
            engine=insight_server.workflows,
            alerts=insight_server.insights.alerts,
            settings=insight_server.insights.settings,
        )
        await again("acme", [a for a in stored if a.alert_id == churn.alert_id])
        listed = await runs.ListRuns(workflow_pb2.ListRunsRequest(), metadata=admin)
        assert [r.run_id for r in listed.runs] == [run.run_id]
    ledger = DeliveryLedger(database=insight_server.database)
    assert len(await ledger.list_for_run("acme", run.run_id)) == 1


async def _with_run(server: Server, kind: str) -> StoredAlert:
    """The tenant's first stored alert of ``kind``, once its follow-up run is on it."""
    assert server.insights is not None
    for _ in range(200):
        for alert in await server.insights.alerts.read("acme", after=0, limit=100):
            if alert.kind == kind and alert.run_id:
                return alert
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} alert with a run")


async def _run_until(
    runs: workflow_pb2_grpc.WorkflowServiceAsyncStub,
    md: tuple[tuple[str, str], ...],
    run_id: str,
    states: set[workflow_pb2.Run.State.ValueType],
) -> workflow_pb2.Run:
    run = workflow_pb2.Run()
    for _ in range(600):
        run = await runs.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
        if run.state in states:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run still {RunState.Name(run.state)}: {run}")
