"""score_lead, record_lead_outcome, start_workflow and get_run over MCP, with auth."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import httpx2
import pytest

from ai_orchestration.errors import FailedPreconditionError, UnavailableError
from ai_orchestration.server import Server, build_authenticator
from ai_orchestration.storage import Database
from tests.conftest import TokenFactory, running_server, server_settings
from tests.mcp_server.conftest import refusal, session, structured

TOOLS = {
    "ask_customer",
    "create_follow_up_task",
    "customer_insights",
    "escalate_customer",
    "get_run",
    "record_lead_outcome",
    "score_lead",
    "search_interactions",
    "start_workflow",
}
HOT = {
    "lead_id": "hot-1",
    "email": "cto@bigco.example",
    "employee_count": 1500,
    "seniority": "SENIORITY_C_LEVEL",
    "source": "LEAD_SOURCE_REFERRAL",
    "industry": "Software",
    "page_visits": 12,
    "pricing_page_visits": 3,
    "demo_requested": True,
    "days_since_last_touch": 2,
}


async def test_tools_are_listed_with_described_inputs(
    mcp_server: Server, token: TokenFactory
) -> None:
    async with session(mcp_server, token(roles=["scoring.reader"])) as client:
        tools = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert tool.description
        properties = tool.input_schema["properties"]
        assert properties, tool.name
        for name, schema in properties.items():
            assert schema.get("description") or "$ref" in schema or "anyOf" in schema, name


async def test_no_or_bad_token_is_refused_before_any_tool(
    mcp_server: Server, token: TokenFactory
) -> None:
    assert mcp_server.mcp is not None
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {"accept": "application/json, text/event-stream"}
    expired = token(expires_in=-3600)
    foreign = token(secret="another-secret-with-at-least-32-bytes-of-entropy")
    async with httpx2.AsyncClient(timeout=30) as http:
        for bearer in (None, "not-a-jwt", expired, foreign):
            sent = headers | ({"authorization": f"Bearer {bearer}"} if bearer else {})
            reply = await http.post(mcp_server.mcp.url, json=initialize, headers=sent)
            assert reply.status_code == 401, bearer


async def test_score_lead_scores_and_explains(mcp_server: Server, token: TokenFactory) -> None:
    async with session(mcp_server, token(roles=["scoring.reader"])) as client:
        score = structured(await client.call_tool("score_lead", {"lead": HOT}))
    assert 0 <= score["score"] <= 100
    assert score["grade"] in {"GRADE_A", "GRADE_B", "GRADE_C", "GRADE_D"}
    assert score["lead_id"] == "hot-1"
    assert score["positive_factors"][0]["reason"]


async def test_score_lead_needs_its_role_and_valid_fields(
    mcp_server: Server, token: TokenFactory
) -> None:
    async with session(mcp_server, token(roles=["insight.reader"])) as client:
        denied = refusal(await client.call_tool("score_lead", {"lead": HOT}))
    assert denied.startswith("PERMISSION_DENIED")
    assert "scoring.reader" in denied
    async with session(mcp_server, token(roles=["scoring.reader"])) as client:
        too_small = refusal(
            await client.call_tool("score_lead", {"lead": {**HOT, "employee_count": 0}})
        )
        bad_email = refusal(
            await client.call_tool("score_lead", {"lead": {**HOT, "email": "not-an-email"}})
        )
    assert "employee_count" in too_small
    assert bad_email.startswith("INVALID_ARGUMENT")
    assert "lead.email" in bad_email


async def test_record_lead_outcome_once_per_request_id(
    mcp_server: Server, token: TokenFactory
) -> None:
    arguments = {"request_id": str(uuid.uuid4()), "lead_id": "hot-1", "outcome": "converted"}
    async with session(mcp_server, token(roles=["scoring.reader"])) as client:
        denied = refusal(await client.call_tool("record_lead_outcome", arguments))
    assert denied.startswith("PERMISSION_DENIED")
    async with session(mcp_server, token(roles=["scoring.writer"])) as client:
        first = structured(await client.call_tool("record_lead_outcome", arguments))
        again = structured(await client.call_tool("record_lead_outcome", arguments))
        changed = refusal(
            await client.call_tool("record_lead_outcome", {**arguments, "outcome": "disqualified"})
        )
    assert first["outcome"] == "OUTCOME_CONVERTED"
    assert again == first
    assert changed.startswith("ABORTED")


async def test_start_workflow_and_get_run_per_tenant(
    mcp_server: Server, token: TokenFactory
) -> None:
    arguments = {
        "request_id": str(uuid.uuid4()),
        "workflow": "lead_qualification",
        "input": {"lead": HOT, "notes": "Met at the fair."},
    }
    async with session(mcp_server, token(roles=["workflow.reader"])) as client:
        denied = refusal(await client.call_tool("start_workflow", arguments))
    assert denied.startswith("PERMISSION_DENIED")
    async with session(mcp_server, token(roles=["workflow.operator"])) as client:
        run = structured(await client.call_tool("start_workflow", arguments))
        again = structured(await client.call_tool("start_workflow", arguments))
        got = structured(await client.call_tool("get_run", {"run_id": run["run_id"]}))
        bad_input = refusal(
            await client.call_tool("start_workflow", {**arguments, "input": {"lead": {"nope": 1}}})
        )
    assert run["workflow"] == "lead_qualification"
    assert again["run_id"] == run["run_id"]
    assert got["run_id"] == run["run_id"]
    assert bad_input.startswith("INVALID_ARGUMENT")
    assert "input" in bad_input
    async with session(mcp_server, token(tenant_id="globex", roles=["admin"])) as client:
        foreign = refusal(await client.call_tool("get_run", {"run_id": run["run_id"]}))
    assert foreign.startswith("NOT_FOUND")


async def test_off_by_default(server: Server) -> None:
    assert server.mcp is None


async def test_dev_mode_serves_the_dev_tenant_without_a_token(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, auth_hs256_secret="", mcp_port=0)
    async with running_server(settings) as running, session(running, None) as client:
        score = structured(await client.call_tool("score_lead", {"lead": HOT}))
    assert score["lead_id"] == "hot-1"


def test_dev_mode_refuses_an_mcp_endpoint_off_loopback(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, auth_hs256_secret="", mcp_port=0, mcp_host="0.0.0.0")
    with pytest.raises(FailedPreconditionError, match=r"0\.0\.0\.0"):
        build_authenticator(settings)


async def test_a_busy_mcp_port_fails_the_start_and_leaves_nothing_serving(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = server_settings(tmp_path, mcp_port=taken.getsockname()[1])
        async with Database.from_url(settings.resolved_database_url()) as database:
            await database.migrate()
            server = Server(settings=settings, database=database)
            with pytest.raises(UnavailableError, match="AIO_MCP_PORT"):
                await server.start()
            assert server.port > 0
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", server.port)
