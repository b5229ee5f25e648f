"""The MCP endpoint: the SDK's MCPServer over Streamable HTTP, served by uvicorn in the
gRPC server's event loop, on its own port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl

from ai_orchestration.errors import UnavailableError
from ai_orchestration.mcp_server._auth import BearerTokens
from ai_orchestration.security import Authenticator

_log = logging.getLogger(__name__)
PATH: Final = "/mcp"
"""Where the endpoint answers."""
_STARTUP_POLL_SECONDS: Final = 0.01


class _Embedded(uvicorn.Server):
    """uvicorn inside a process it does not own: the gRPC server handles SIGTERM/SIGINT and
    stops this one, so uvicorn must not take the signals over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class McpEndpoint:
    """Serves ``tools`` at ``http://<host>:<port>/mcp``. ``start()`` binds (port 0 picks a free
    one, see :attr:`port`), ``stop()`` drains and is safe to call twice."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        tools: Sequence[tuple[Callable[..., Any], ToolAnnotations]],
        host: str,
        port: int,
        grace_seconds: float,
    ) -> None:
        """``tools``: each tool's function (its name, docstring and signature make the tool)
        and its hints. Without token verification (``authenticator.dev_mode``) every caller
        is the dev tenant, as on the gRPC server."""
        verifier = None if authenticator.dev_mode else BearerTokens(authenticator)
        server: MCPServer[Any] = MCPServer(
            "ai-orchestration",
            instructions="CRM AI tools of the AI Orchestration Service: lead scoring, "
            "workflows, customer answers and insights, follow-up tasks and escalations. "
            "Every call acts for the tenant of your token.",
            token_verifier=verifier,
            # Resource-server mode with our own JWTs: no OAuth routes are mounted, the issuer
            # is only a required field of the SDK's settings.
            auth=None
            if verifier is None
            else AuthSettings(issuer_url=AnyHttpUrl("http://localhost"), resource_server_url=None),
        )
        for function, hints in tools:
            server.add_tool(function, annotations=hints, structured_output=True)
        # Stateless: any replica answers any request (no session to pin behind a balancer).
        self._app = server.streamable_http_app(
            streamable_http_path=PATH, host=host, stateless_http=True, json_response=True
        )
        self._host = host
        self._requested_port = port
        self._grace = grace_seconds
        self._server: _Embedded | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        """The bound port, once started."""

    @property
    def url(self) -> str:
        """The endpoint's URL, once started."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{PATH}"

    async def start(self) -> int:
        """Bind and serve; returns the port.

        Raises:
            UnavailableError: the address cannot be listened on (reason ``ADDRESS_IN_USE``).
        """
        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=self._requested_port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=max(1, round(self._grace)),
        )
        server = _Embedded(config)
        task = asyncio.create_task(self._serve(server), name="mcp-endpoint")
        # uvicorn only sets a flag once it listens (no event to wait on).
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(_STARTUP_POLL_SECONDS)
        if not server.started:
            await task
            raise UnavailableError(
                f"cannot listen on {self._host}:{self._requested_port} for MCP: the address is "
                "in use or not an address of this machine; choose another AIO_MCP_PORT",
                reason="ADDRESS_IN_USE",
                metadata={"address": f"{self._host}:{self._requested_port}"},
            )
        self._server, self._task = server, task
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        return self.port

    @staticmethod
    async def _serve(server: _Embedded) -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn's answer to a failed bind or lifespan start-up
            _log.error("the MCP endpoint could not start")

    async def stop(self) -> None:
        """Stop accepting, let open requests finish for the grace period, then close."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        await task
