"""Why a tool call failed, as errors of the service's hierarchy (:mod:`ai_orchestration.errors`).

::

    UnavailableError
    └── ToolUnavailableError    the server is down, open-circuit, failing or too slow:
                                an agent degrades the step (``reason`` says which)
    NotFoundError               no allowed tool of that name (reason MCP_TOOL_NOT_FOUND)
    InvalidArgumentError        the server refused the call's arguments (MCP_INVALID_CALL)

A tool that runs and reports an error is no exception: its result has ``is_error`` set.
"""

from __future__ import annotations

from typing import Final

from ai_orchestration.errors import UnavailableError

__all__ = [
    "MCP_CIRCUIT_OPEN",
    "MCP_INVALID_CALL",
    "MCP_SERVER_ERROR",
    "MCP_SERVER_UNAVAILABLE",
    "MCP_TOOL_NOT_FOUND",
    "MCP_TOOL_TIMEOUT",
    "ToolUnavailableError",
]

MCP_SERVER_UNAVAILABLE: Final[str] = "MCP_SERVER_UNAVAILABLE"
"""The server has no open session (starting, crashed, unreachable): the call was not sent."""
MCP_CIRCUIT_OPEN: Final[str] = "MCP_CIRCUIT_OPEN"
"""The server's circuit is open after repeated failures: the call was not sent."""
MCP_TOOL_TIMEOUT: Final[str] = "MCP_TOOL_TIMEOUT"
"""The call took longer than the server's ``timeouts.call``."""
MCP_SERVER_ERROR: Final[str] = "MCP_SERVER_ERROR"
"""The server or its transport failed the call (an HTTP 5xx, a closed connection, ...)."""
MCP_TOOL_NOT_FOUND: Final[str] = "MCP_TOOL_NOT_FOUND"
"""No allowed tool has that (prefixed) name."""
MCP_INVALID_CALL: Final[str] = "MCP_INVALID_CALL"
"""The server refused the call as malformed (unknown tool, invalid arguments)."""


class ToolUnavailableError(UnavailableError):
    """An MCP tool could not be called; ``reason`` is one of the ``MCP_*`` reasons above."""

    default_reason = MCP_SERVER_UNAVAILABLE

    def __init__(self, message: str, *, reason: str, server: str, tool: str) -> None:
        super().__init__(message, reason=reason, metadata={"server": server, "tool": tool})
        self.server = server
        """The configured server name."""
        self.tool = tool
        """The exposed (prefixed) tool name."""
