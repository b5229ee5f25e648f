"""The external MCP tools of this replica: the tool pool and which agent calls what."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from ai_orchestration._redis import redis_client
from ai_orchestration.config import Settings
from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.llm import BreakerStore, RedisBreakerStore
from ai_orchestration.observability import Tracing
from ai_orchestration.tools import (
    MCP_BREAKER_PREFIX,
    TOOL_SEPARATOR,
    McpConfigError,
    McpServerConfig,
    ToolPool,
    load_servers,
)
from ai_orchestration.workflows.graphs import ExternalToolUse, load_tool_uses

__all__ = ["ExternalToolsSetup", "start_tools"]

ExternalToolsSetup = tuple[ToolPool | None, Mapping[str, tuple[ExternalToolUse, ...]]]
"""The pool (None without ``AIO_MCP_SERVERS_FILE``) and each agent's tool uses."""


def _allowed(servers: tuple[McpServerConfig, ...], name: str) -> bool:
    prefix, separator, tool = name.partition(TOOL_SEPARATOR)
    return bool(separator) and any(
        server.tool_prefix == prefix and server.allows(tool) for server in servers
    )


async def start_tools(
    *,
    settings: Settings,
    resources: contextlib.AsyncExitStack,
    metrics: CollectorRegistry | None = None,
    tracing: Tracing | None = None,
) -> ExternalToolsSetup:
    """Read ``AIO_MCP_SERVERS_FILE`` and open a session to each server (a server that is down
    does not fail the start); ``resources`` closes the pool.

    Raises:
        InvalidArgumentError: the file is invalid (reason ``BAD_MCP_CONFIG``; the message
            names the key).
    """
    if not settings.mcp_servers_file:
        return None, {}
    path = settings.mcp_servers_file
    try:
        servers = load_servers(path, environ=os.environ)
    except McpConfigError as bad:
        raise InvalidArgumentError(str(bad), reason="BAD_MCP_CONFIG") from bad
    uses = load_tool_uses(path, allows=lambda name: _allowed(servers, name))
    store: BreakerStore | None = None
    if settings.redis_url:
        client = redis_client(settings.redis_url, wait_seconds=2, command_seconds=2)
        resources.push_async_callback(client.aclose)
        store = RedisBreakerStore(client=client, prefix=MCP_BREAKER_PREFIX)
    pool = ToolPool(
        servers,
        breaker_store=store,
        registry=metrics,
        tracer=tracing.tracer("ai_orchestration.tools") if tracing else None,
    )
    await resources.enter_async_context(pool)
    return pool, uses
