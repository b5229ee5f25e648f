"""EraseCustomer takes the customer's ``customer_follow_up`` runs with it, on SQLite and
PostgreSQL: a delivered run and a run waiting for review, with their events, deliveries and
LangGraph checkpoints; another customer's run is left alone."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import grpc.aio
import pytest
from crm.ai.v1 import insight_pb2, insight_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from google.protobuf.field_mask_pb2 import FieldMask

from ai_orchestration.server import Server
from ai_orchestration.storage import DeliveryLedger
from tests.api._leads import metadata
from tests.api.test_insight_alerts import _run_until
from tests.api.test_insight_ingest import interaction, stream
from tests.conftest import TokenFactory
from tests.storage.test_interactions import _rows_containing, row_holds

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = insight_pb2_grpc.InsightServiceAsyncStub

Md: TypeAlias = tuple[tuple[str, str], ...]
RunState = workflow_pb2.Run.State
# What each customer wrote: a churn risk each, in words found nowhere else.
WORDS = {
    "cust-9": "We are not renewing. We will cancel the contract at the end of the month.",
    "cust-8": "Cancel our subscription please, we are moving to a cheaper vendor next week.",
}
NEEDLE = {"cust-9": "not renewing", "cust-8": "cheaper vendor"}


async def test_erasing_a_customer_takes_its_follow_up_runs(
    stub: Stub, insight_server: Server, token: TokenFactory, tmp_path: Path
) -> None:
    admin = metadata(token(roles=["admin"]))
    await _follow_up_on_churn(stub, admin)
    run_of = await _ingest_churn(stub, insight_server, admin)
    ledger = DeliveryLedger(database=insight_server.database)
    async with grpc.aio.insecure_channel(insight_server.address) as channel:
        runs = workflow_pb2_grpc.WorkflowServiceStub(channel)
        waiting = {RunState.STATE_WAITING_FOR_INPUT}
        for run_id in run_of.values():
            await _run_until(runs, admin, run_id, waiting)
        await _approve(runs, admin, run_of["cust-9"])
        await _run_until(runs, admin, run_of["cust-9"], {RunState.STATE_SUCCEEDED})
        assert len(await ledger.list_for_run("acme", run_of["cust-9"])) == 1
        for needle in NEEDLE.values():  # the runs' state holds the customers' words
            assert await _stored_with(insight_server, tmp_path, needle)

        erased = await _erase(stub, admin, "cust-9")
        assert erased.runs == 1 and erased.interactions == 1 and erased.alerts >= 1
        assert await _stored_with(insight_server, tmp_path, NEEDLE["cust-9"]) == []
        assert await ledger.list_for_run("acme", run_of["cust-9"]) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await runs.GetRun(workflow_pb2.GetRunRequest(run_id=run_of["cust-9"]), metadata=admin)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        # The other customer's run still waits for its review.
        kept = await _run_until(runs, admin, run_of["cust-8"], waiting)
        assert kept.pending_interrupt.interrupt_id

        # A run waiting for review is cancelled, then deleted.
        assert (await _erase(stub, admin, "cust-8")).runs == 1
        assert await _stored_with(insight_server, tmp_path, NEEDLE["cust-8"]) == []
        listed = await runs.ListRuns(workflow_pb2.ListRunsRequest(), metadata=admin)
        assert list(listed.runs) == []
    assert (await _erase(stub, admin, "cust-8")).runs == 0
    assert insight_server.insights is not None
    records = await insight_server.insights.insights.erasures("acme")
    counts = [record["counts"] for record in records]
    assert [c["runs"] for c in counts if isinstance(c, dict)] == [1, 1, 0]


async def _follow_up_on_churn(stub: Stub, md: Md) -> None:
    follow_up = insight_pb2.FollowUpSettings(
        kinds=[insight_pb2.Alert.KIND_CHURN_RISK], min_severity=insight_pb2.SEVERITY_HIGH
    )
    await stub.UpdateInsightSettings(
        insight_pb2.UpdateInsightSettingsRequest(
            settings=insight_pb2.InsightSettings(follow_up=follow_up),
            update_mask=FieldMask(paths=["follow_up"]),
        ),
        metadata=md,
    )


async def _ingest_churn(stub: Stub, server: Server, md: Md) -> dict[str, str]:
    """Each customer's churn e-mail; returns customer -> the follow-up run its alert started."""
    days = (datetime.now(UTC) - datetime(2026, 5, 4, tzinfo=UTC)).days
    messages = [
        interaction(f"f-{customer}", body, customer=customer, days=days)
        for customer, body in WORDS.items()
    ]
    reply = await stub.IngestInteractions(stream(*messages), metadata=md)
    assert reply.alerts_raised >= 2
    assert server.insights is not None
    for _ in range(200):
        alerts = await server.insights.alerts.read("acme", after=0, limit=100)
        run_of = {a.customer_id: a.run_id for a in alerts if a.kind == "churn_risk" and a.run_id}
        if run_of.keys() == WORDS.keys():
            return run_of
        await asyncio.sleep(0.05)
    raise AssertionError("a churn alert started no follow-up run")


async def _approve(runs: workflow_pb2_grpc.WorkflowServiceAsyncStub, md: Md, run_id: str) -> None:
    run = await runs.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    interrupt = run.pending_interrupt
    approval = workflow_pb2.Approval(
        override_failed_checks=bool(interrupt.proposal.draft.failed_checks)
    )
    await runs.ResumeRun(
        workflow_pb2.ResumeRunRequest(
            run_id=run_id, interrupt_id=interrupt.interrupt_id, approve=approval
        ),
        metadata=md,
    )


async def _erase(stub: Stub, md: Md, customer: str) -> insight_pb2.EraseCustomerResponse:
    request = insight_pb2.EraseCustomerRequest(customer_id=customer)
    response: insight_pb2.EraseCustomerResponse = await stub.EraseCustomer(request, metadata=md)
    return response


async def _stored_with(server: Server, directory: Path, needle: str) -> list[str]:
    """The tables holding ``needle``: the service's database and, on SQLite, the separate
    checkpoint file (on PostgreSQL the checkpoint tables are in the same database)."""
    return [*await _rows_containing(server.database, needle), *_checkpoints_with(directory, needle)]


def _checkpoints_with(directory: Path, needle: str) -> list[str]:
    found = []
    for path in directory.rglob("*-checkpoints.db"):
        with sqlite3.connect(path) as conn:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            for (table,) in conn.execute(query).fetchall():
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                found += [f"{path.name}:{table}" for row in rows if row_holds(row, needle)]
    return found
