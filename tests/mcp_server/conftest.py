"""A real server with its MCP endpoint on a free loopback port, and SDK client sessions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from ai_orchestration.server import Server
from tests.api.conftest import write_llm_config
from tests.conftest import running_server, server_settings
from tests.fixtures.llm_server import LlmTestServer


@pytest.fixture
async def mcp_server(tmp_path: Path, llm_server: LlmTestServer) -> AsyncIterator[Server]:
    """A server with HS256 auth, its LLM gateway on the LLM test server, MCP on port 0."""
    settings = server_settings(
        tmp_path,
        mcp_port=0,
        llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        llm_cache_ttl_seconds=0,
    )
    async with running_server(settings) as running:
        assert running.mcp is not None and running.mcp.port > 0
        yield running


@contextlib.asynccontextmanager
async def session(server: Server, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialized SDK session to the server's MCP endpoint, sending ``token``."""
    assert server.mcp is not None
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(server.mcp.url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """The result of a call that succeeded."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def refusal(result: CallToolResult) -> str:
    """The message of a refused call, after the SDK's ``Error executing tool <name>: ``."""
    assert result.is_error
    text = getattr(result.content[0], "text", "")
    assert isinstance(text, str)
    assert text.startswith("Error executing tool "), text
    return text.split(": ", 1)[1]
