"""The service's errors as MCP tool errors: the gRPC status name, then the message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mcp.server.mcpserver.exceptions import ToolError

from ai_orchestration.errors import OrchestrationError


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turns an error the service raised on purpose into a tool error the caller reads
    (``PERMISSION_DENIED: ...``, ``NOT_FOUND: ...``, ``INVALID_ARGUMENT: lead.email: ...``).

    Anything else is left to the SDK, which answers with a fixed message and logs the crash.
    """
    try:
        yield
    except OrchestrationError as error:
        raise ToolError(f"{error.status_name}: {error.message}") from error
