"""External tools over the Model Context Protocol (issue #21), grpc-free.

:class:`ToolPool` keeps one persistent session per MCP server configured in a YAML file
(:func:`load_servers`; ``AIO_MCP_SERVERS_FILE``), reopens it with backoff after a failure,
guards each server with a circuit breaker shared like the LLM breakers, lists the tools again
on ``notifications/tools/list_changed`` and exposes them as ``<prefix>__<tool>`` so that two
servers never collide. A call on a down or open-circuit server fails at once with
:class:`ToolUnavailableError`, on which agents degrade.
"""

from __future__ import annotations

from ai_orchestration.tools._config import (
    ALL_TOOLS,
    TOOL_SEPARATOR,
    McpConfigError,
    McpServerConfig,
    ReconnectPolicy,
    ToolTimeouts,
    load_servers,
    parse_servers,
)
from ai_orchestration.tools._connection import ServerState, ToolSpec
from ai_orchestration.tools._errors import (
    MCP_CIRCUIT_OPEN,
    MCP_INVALID_CALL,
    MCP_SERVER_ERROR,
    MCP_SERVER_UNAVAILABLE,
    MCP_TOOL_NOT_FOUND,
    MCP_TOOL_TIMEOUT,
    ToolUnavailableError,
)
from ai_orchestration.tools._pool import MCP_BREAKER_PREFIX, ServerHealth, ToolPool, ToolResult
from ai_orchestration.tools._telemetry import SERVER_STATES, ToolMetrics

__all__ = [
    "ALL_TOOLS",
    "MCP_BREAKER_PREFIX",
    "MCP_CIRCUIT_OPEN",
    "MCP_INVALID_CALL",
    "MCP_SERVER_ERROR",
    "MCP_SERVER_UNAVAILABLE",
    "MCP_TOOL_NOT_FOUND",
    "MCP_TOOL_TIMEOUT",
    "SERVER_STATES",
    "TOOL_SEPARATOR",
    "McpConfigError",
    "McpServerConfig",
    "ReconnectPolicy",
    "ServerHealth",
    "ServerState",
    "ToolMetrics",
    "ToolPool",
    "ToolResult",
    "ToolSpec",
    "ToolTimeouts",
    "ToolUnavailableError",
    "load_servers",
    "parse_servers",
]
