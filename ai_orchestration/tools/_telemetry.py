"""What tool calls tell the operators: Prometheus series and a span per call.

The span is the MCP request, as the OpenTelemetry MCP conventions name it (``tools/call
{name}``, kind CLIENT, ``mcp.method.name``), with the GenAI tool attributes
(``gen_ai.operation.name`` ``execute_tool``, ``gen_ai.tool.name``) and the server in
``crm.mcp.server``. An agent's call wraps it in its own ``execute_tool`` span (the step's view:
events and the guard). Both parts are optional; nothing is global.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SERVER_STATES", "ToolMetrics"]

SERVER_STATES: Final = ("connecting", "up", "down", "closed")
"""States of a server's session, as :meth:`ToolPool.health` reports them."""
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class ToolMetrics:
    """``aio_mcp_tool_calls_total``, ``aio_mcp_tool_call_duration_seconds`` and
    ``aio_mcp_server_state`` in the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "aio_mcp_tool_calls",
            "MCP tool calls by server, exposed tool name and outcome (ok, tool_error, timeout, "
            "server_error, unavailable, circuit_open, invalid).",
            ["server", "tool", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "aio_mcp_tool_call_duration_seconds",
            "Duration of MCP tool calls that reached the server, by server and outcome.",
            ["server", "outcome"],
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )
        self.state = Gauge(
            "aio_mcp_server_state",
            "1 for the state each MCP server's session is in (connecting, up, down, closed).",
            ["server", "state"],
            registry=registry,
        )

    def set_state(self, server: str, state: str) -> None:
        """Make ``state`` the server's one current state."""
        for each in SERVER_STATES:
            self.state.labels(server=server, state=each).set(1.0 if each == state else 0.0)
