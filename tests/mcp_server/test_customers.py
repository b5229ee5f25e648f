"""ask_customer, customer_insights, search_interactions and the support actions over MCP."""

from __future__ import annotations

import grpc.aio
from crm.ai.v1 import insight_pb2_grpc

from ai_orchestration.insights import AlertKind
from ai_orchestration.server import Server
from ai_orchestration.storage import AlertRepository, DeliveryLedger
from tests.api._leads import metadata
from tests.api.test_insight_ingest import interaction, stream
from tests.conftest import TokenFactory
from tests.mcp_server.conftest import refusal, session, structured

DISCOUNT = "We need a 15% discount on the 40 seats before we sign the renewal."
SECURITY = "Our security team asked for the SOC 2 report and the penetration test summary."
CHURN = "Honestly we are evaluating other vendors and may cancel the contract next month."


async def _seed(server: Server, token: TokenFactory) -> None:
    """Three interactions of acme's cust-1, ingested through the gRPC API and embedded."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        reply = await insight_pb2_grpc.InsightServiceStub(channel).IngestInteractions(
            stream(
                interaction("e-1", DISCOUNT, subject="Renewal terms"),
                interaction("e-2", SECURITY, subject="Security review", days=2),
                interaction("e-3", CHURN, subject="Contract", days=3),
            ),
            metadata=metadata(token(roles=["insight.writer"])),
        )
    assert reply.ingested == 3
    assert server.insights is not None
    await server.insights.worker.drain()


async def test_answers_insights_and_search_cite_the_customers_interactions(
    mcp_server: Server, token: TokenFactory
) -> None:
    await _seed(mcp_server, token)
    async with session(mcp_server, token(roles=["insight.reader"])) as client:
        answer = structured(
            await client.call_tool(
                "ask_customer",
                {"customer_id": "cust-1", "question": "What did they ask about the discount?"},
            )
        )
        found = structured(
            await client.call_tool(
                "search_interactions", {"customer_id": "cust-1", "query": "SOC 2 report"}
            )
        )
        insights = structured(
            await client.call_tool("customer_insights", {"customer_id": "cust-1"})
        )
    assert answer["answer"]
    assert answer["citations"]
    assert {c["interaction_id"] for c in answer["citations"]} <= {"e-1", "e-2", "e-3"}
    assert found["results"][0]["interaction_id"] == "e-2"
    assert insights["insights"]
    for insight in insights["insights"]:
        assert insight["evidence"], insight
        assert insight["evidence"][0]["interaction_id"] in {"e-1", "e-2", "e-3"}


async def test_another_tenants_customer_is_not_found(
    mcp_server: Server, token: TokenFactory
) -> None:
    await _seed(mcp_server, token)
    customer = {"customer_id": "cust-1"}
    calls = {
        "ask_customer": {**customer, "question": "What about the discount?"},
        "search_interactions": {**customer, "query": "discount"},
        "customer_insights": customer,
        "create_follow_up_task": {**customer, "key": "t-1", "title": "Call back"},
        "escalate_customer": {**customer, "key": "x-1", "reason": "Threatens to cancel."},
    }
    async with session(mcp_server, token(tenant_id="globex", roles=["admin"])) as client:
        for name, arguments in calls.items():
            assert refusal(await client.call_tool(name, arguments)).startswith("NOT_FOUND"), name
    async with session(mcp_server, token(roles=["scoring.reader"])) as client:
        for name, arguments in calls.items():
            denied = refusal(await client.call_tool(name, arguments))
            assert denied.startswith("PERMISSION_DENIED"), name
    ledger = DeliveryLedger(database=mcp_server.database)
    for tenant in ("acme", "globex"):
        assert await ledger.list_for_run(tenant, "mcp:task:t-1") == []
        assert await ledger.list_for_run(tenant, "mcp:escalation:x-1") == []


async def test_support_actions_happen_once_per_key(mcp_server: Server, token: TokenFactory) -> None:
    await _seed(mcp_server, token)
    task = {
        "key": "ticket-42",
        "customer_id": "cust-1",
        "title": "Send the SOC 2 report",
        "due_date": "2026-12-24",
    }
    escalation = {"key": "ticket-42", "customer_id": "cust-1", "reason": "Evaluating vendors."}
    async with session(mcp_server, token(roles=["workflow.operator"])) as client:
        first_task = structured(await client.call_tool("create_follow_up_task", task))
        again_task = structured(await client.call_tool("create_follow_up_task", task))
    async with session(mcp_server, token(roles=["insight.writer"])) as client:
        first = structured(await client.call_tool("escalate_customer", escalation))
        again = structured(await client.call_tool("escalate_customer", escalation))
    assert first_task == again_task
    assert first_task["title"] == "Send the SOC 2 report"
    assert first_task["due_date"] == "2026-12-24"
    assert first == again
    assert first["severity"] == "high"
    ledger = DeliveryLedger(database=mcp_server.database)
    assert len(await ledger.list_for_run("acme", "mcp:task:ticket-42")) == 1
    assert len(await ledger.list_for_run("acme", "mcp:escalation:ticket-42")) == 1
    alerts = await AlertRepository(database=mcp_server.database).read("acme", after=0, limit=100)
    escalations = [
        a for a in alerts if a.kind == AlertKind.ESCALATION.value and "Evaluating" in a.message
    ]
    assert len(escalations) == 1
    assert escalations[0].customer_id == "cust-1"


async def test_an_escalation_retried_after_a_crash_raises_its_alert_once(
    mcp_server: Server, token: TokenFactory
) -> None:
    """The alert is written first, under an id made of the caller's key; a crash before the
    ledger row leaves the alert, and the caller's retry adds the row without a second alert."""
    await _seed(mcp_server, token)
    escalation = {"key": "crash-7", "customer_id": "cust-1", "reason": "Legal threat."}
    async with session(mcp_server, token(roles=["insight.writer"])) as client:
        first = structured(await client.call_tool("escalate_customer", escalation))
    ledger = DeliveryLedger(database=mcp_server.database)
    alerts = AlertRepository(database=mcp_server.database)
    (row,) = await ledger.list_for_run("acme", "mcp:escalation:crash-7")
    # The crash: the ledger row is lost, the alert stays.
    async with mcp_server.database.engine.begin() as conn:
        await conn.exec_driver_sql(
            "DELETE FROM workflow_deliveries WHERE idempotency_key = 'mcp:escalation:crash-7'"
        )
    assert await ledger.list_for_run("acme", "mcp:escalation:crash-7") == []
    async with session(mcp_server, token(roles=["insight.writer"])) as client:
        retried = structured(await client.call_tool("escalate_customer", escalation))
    assert retried["key"] == first["key"] == "crash-7"
    assert len(await ledger.list_for_run("acme", "mcp:escalation:crash-7")) == 1
    raised = [
        a
        for a in await alerts.read("acme", after=0, limit=100)
        if a.kind == AlertKind.ESCALATION.value and "Legal threat" in a.message
    ]
    assert len(raised) == 1
    assert row.recipient["alert_id"] == raised[0].alert_id
