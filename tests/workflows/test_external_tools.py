"""Agents consult external MCP tools through the server's pool (issue #21, item 2).

A real server whose lead analysis agent calls the ``echo`` tool of a real MCP server (written
with the SDK, over Streamable HTTP on loopback) with the lead's company: the call and its
answer are run events, and the answer reaches the model as untrusted context. With the MCP
server gone, the step degrades and the run still ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
import yaml
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.server import Server
from ai_orchestration.workflows.graphs import parse_tool_uses
from tests.api._leads import hot_lead, metadata
from tests.api.conftest import write_llm_config
from tests.conftest import TokenFactory, running_server, server_settings
from tests.fixtures.llm_server import LlmTestServer
from tests.fixtures.mcp_servers import ServerProcess

COMPANY = "Acme Robotics"
State = workflow_pb2.Run.State


@pytest.fixture
def enrichment(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess("enrich", tmp_path / "enrich")
    server.start()
    yield server
    server.stop()


def _servers_file(path: Path, url: str) -> Path:
    document = {
        "servers": [
            {
                "name": "enrich",
                "transport": "streamable_http",
                "url": url,
                "allowed_tools": ["echo"],
                "timeouts": {"connect": 5, "call": 5, "read": 5},
                "breaker": {"allowed_fails": 1, "window": 60, "cooldown": 60},
            }
        ],
        "agents": {
            "lead_analysis": [
                {
                    "tool": "enrich__echo",
                    "arguments": {"text": "{company}"},
                    "label": "Company profile",
                }
            ]
        },
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
async def served(
    tmp_path: Path, llm_server: LlmTestServer, enrichment: ServerProcess
) -> AsyncIterator[Server]:
    settings = server_settings(
        tmp_path,
        llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        llm_cache_ttl_seconds=0,
        mcp_servers_file=str(_servers_file(tmp_path / "mcp.yaml", enrichment.url)),
    )
    async with running_server(settings) as server:
        yield server


async def _run(server: Server, md: Any, lead_id: str) -> list[workflow_pb2.RunEvent]:
    lead = hot_lead(lead_id)
    lead.company_name = COMPANY
    request = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        lead_qualification=workflow_pb2.LeadQualificationInput(lead=lead),
    )
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        stream = stub.StreamRun(workflow_pb2.StreamRunRequest(run=request), metadata=md)
        return [event async for event in stream]


def _external(events: list[workflow_pb2.RunEvent]) -> tuple[Any, Any]:
    call = next(e.tool_call for e in events if e.tool_call.tool == "enrich__echo")
    result = next(e.tool_result for e in events if e.tool_result.call_id == call.call_id)
    return call, result


def _analysis_degraded(events: list[workflow_pb2.RunEvent]) -> bool:
    finished = [e.step_finished for e in events if e.HasField("step_finished")]
    return next(f.degraded for f in finished if f.step == "lead_analysis")


async def test_the_lead_analysis_consults_the_configured_tool_and_shows_its_answer(
    served: Server, token: TokenFactory, llm_server: LlmTestServer
) -> None:
    events = await _run(served, metadata(token()), "ext-1")
    call, result = _external(events)
    assert json.loads(call.arguments_json) == {"text": COMPANY}
    assert not result.error
    assert json.loads(result.result_json) == {"text": f"enrich:{COMPANY}"}
    assert result.duration.ToMicroseconds() > 0  # the round trip to the MCP server
    prompts = [json.dumps(r.body) for r in llm_server.requests if r.path.endswith("/completions")]
    assert any("Company profile (from an external tool" in p for p in prompts)
    assert any(f"enrich:{COMPANY}" in p for p in prompts)
    assert events[-1].state_changed.to in (State.STATE_SUCCEEDED, State.STATE_WAITING_FOR_INPUT)


async def test_a_server_that_is_down_degrades_the_step_not_the_run(
    served: Server, token: TokenFactory, enrichment: ServerProcess
) -> None:
    enrichment.stop()
    md = metadata(token())
    for number in range(2):  # the first failure opens the circuit; the second fails fast
        events = await _run(served, md, f"ext-down-{number}")
        _, result = _external(events)
        assert result.error
        assert _analysis_degraded(events)
        assert events[-1].state_changed.to in (
            State.STATE_SUCCEEDED,
            State.STATE_WAITING_FOR_INPUT,
        )
    assert json.loads(result.result_json)["error"] == "ToolUnavailableError"


@pytest.mark.parametrize(
    ("agents", "key"),
    [
        ({"lead_scoring": []}, "agents.lead_scoring"),
        (
            {"lead_analysis": [{"tool": "other__echo", "arguments": {}}]},
            "agents.lead_analysis[0].tool",
        ),
        (
            {"lead_analysis": [{"tool": "enrich__echo", "arguments": {"text": "{salary}"}}]},
            "agents.lead_analysis[0].arguments.text",
        ),
        (
            {"lead_analysis": [{"tool": "enrich__echo", "arguments": {}, "max_chars": 0}]},
            "agents.lead_analysis[0].max_chars",
        ),
    ],
)
def test_a_bad_agents_section_is_refused_naming_the_key(agents: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        parse_tool_uses({"agents": agents}, allows=lambda name: name == "enrich__echo")
    assert f": {key}:" in refused.value.message


def test_a_use_whose_fields_the_subject_lacks_is_skipped() -> None:
    uses = parse_tool_uses(
        {
            "agents": {
                "lead_analysis": [{"tool": "enrich__echo", "arguments": {"text": "{company}"}}]
            }
        },
        allows=lambda name: True,
    )
    (use,) = uses["lead_analysis"]
    assert use.render({"company": "Acme"}) == {"text": "Acme"}
    assert use.render({"company": ""}) is None  # a lead without a company calls nothing
