"""The tools of every configured MCP server behind one call, each server behind a breaker.

A call resolves the prefixed name to its server, asks the server's circuit breaker (shared by
the replicas when the store is Redis), and sends ``tools/call`` on the server's persistent
session with the call timeout. A server without a session or with an open circuit fails the
call at once with :class:`ToolUnavailableError`, without contacting it, so a caller can degrade.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from mcp import ClientSession, MCPError, types
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from redis.exceptions import RedisError

from ai_orchestration.errors import InvalidArgumentError, NotFoundError
from ai_orchestration.llm import BreakerState, BreakerStore, InProcessBreakerStore
from ai_orchestration.tools._config import TOOL_SEPARATOR, McpServerConfig
from ai_orchestration.tools._connection import ServerConnection, ServerState, ToolSpec
from ai_orchestration.tools._errors import (
    MCP_CIRCUIT_OPEN,
    MCP_INVALID_CALL,
    MCP_SERVER_ERROR,
    MCP_SERVER_UNAVAILABLE,
    MCP_TOOL_NOT_FOUND,
    MCP_TOOL_TIMEOUT,
    ToolUnavailableError,
)
from ai_orchestration.tools._telemetry import ToolMetrics

__all__ = ["MCP_BREAKER_PREFIX", "ServerHealth", "ToolPool", "ToolResult"]

_log = logging.getLogger(__name__)

MCP_BREAKER_PREFIX: Final[str] = "aio:mcp:breaker:"
"""Key prefix for a ``RedisBreakerStore`` of MCP servers (apart from the LLM breakers')."""
_TIMEOUT_GRACE: Final[float] = 1.0
"""Beyond the SDK's own request timeout, the call's backstop deadline."""
# Errors by which the server refuses the call itself: it is healthy, the call is wrong.
_CALLER_CODES: Final = frozenset({types.INVALID_PARAMS, types.METHOD_NOT_FOUND})
# Errors after which the session is gone (a closed connection, an HTTP session the server
# no longer knows): the connection opens a new one.
_SESSION_LOST_CODES: Final = frozenset({types.CONNECTION_CLOSED, types.INVALID_REQUEST})
_OUTCOME_BY_REASON: Final = {
    MCP_CIRCUIT_OPEN: "circuit_open",
    MCP_SERVER_UNAVAILABLE: "unavailable",
    MCP_TOOL_TIMEOUT: "timeout",
    MCP_SERVER_ERROR: "server_error",
}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool answered."""

    name: str
    """The exposed name that was called."""
    server: str
    """The server that answered."""
    is_error: bool
    """The tool ran and reported an error (its text says which)."""
    text: str
    """The text parts of the answer, joined by newlines."""
    structured: Mapping[str, Any] | None
    """The structured answer, if the tool gave one."""
    content: tuple[types.ContentBlock, ...]
    """Every part of the answer as the SDK parsed it."""
    duration: float
    """Seconds from sending the call to its answer."""


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One server as the pool sees it now."""

    state: ServerState
    """The session's state."""
    breaker: BreakerState
    """The server's circuit."""
    tools: int
    """Allowed tools of the last listing."""
    sessions_opened: int
    """Sessions opened since start (1 while the first lives)."""
    last_error: str
    """Why the last session ended or failed to open ("" if none did)."""


class ToolPool:
    """One persistent session per configured MCP server and the calls through them.

    Use it as ``async with ToolPool(servers) as pool``; :meth:`start` waits for every server's
    first connection attempt (a server that is down does not fail the start: its tools are
    unavailable until it comes up). :meth:`close` is safe to call twice.
    """

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        breaker_store: BreakerStore | None = None,
        registry: CollectorRegistry | None = None,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        client_info: types.Implementation | None = None,
    ) -> None:
        """``breaker_store``: where circuits live (a ``RedisBreakerStore`` with
        ``prefix=MCP_BREAKER_PREFIX`` shares them across replicas; default in this process).
        ``clock``: wall-clock seconds for the breakers, so replicas agree."""
        self._metrics = ToolMetrics(registry) if registry is not None else None
        self._tracer = tracer or NoOpTracer()
        self._store = breaker_store or InProcessBreakerStore()
        self._clock = clock
        info = client_info or types.Implementation(name="ai-orchestration", version="1")
        self._connections = {
            server.tool_prefix: ServerConnection(
                server, client_info=info, on_state=self._state_changed, rng=rng
            )
            for server in servers
        }
        self._by_name = {c.config.name: c for c in self._connections.values()}
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open every server's session; return when each opened or failed its first attempt."""
        for connection in self._connections.values():
            self._state_changed(connection.config.name, connection.state)
            connection.start()
        await asyncio.gather(*(c.wait_first_attempt() for c in self._connections.values()))

    async def close(self) -> None:
        """Close every session and stop reopening them; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(c.close() for c in self._connections.values()))

    def list_tools(self) -> tuple[ToolSpec, ...]:
        """Every allowed tool of every server's last listing (also of servers now down)."""
        return tuple(
            spec for connection in self._connections.values() for spec in connection.tools.values()
        )

    async def health(self) -> Mapping[str, ServerHealth]:
        """Each server's session and circuit, by server name."""
        now = self._clock()
        return {
            name: ServerHealth(
                state=connection.state,
                breaker=await self._breaker_state(name, now),
                tools=len(connection.tools),
                sessions_opened=connection.sessions_opened,
                last_error=connection.last_error,
            )
            for name, connection in self._by_name.items()
        }

    async def _breaker_state(self, server: str, now: float) -> BreakerState:
        try:
            return await self._store.state(server, now)
        except RedisError:
            return "closed"  # a Redis store that cannot be reached admits every call

    async def probe(self, server: str) -> bool:
        """Ping ``server`` now (health probe); a failure makes its session reopen."""
        connection = self._by_name.get(server)
        if connection is None:
            raise NotFoundError(f"no MCP server {server!r}", reason="MCP_SERVER_NOT_FOUND")
        return await connection.ping()

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> ToolResult:
        """Call the tool exposed as ``name`` (``<prefix>__<tool>``).

        Raises :class:`ToolUnavailableError` (server down, circuit open, timeout, server
        failure), ``NotFoundError`` (no such allowed tool) or ``InvalidArgumentError`` (the
        server refused the arguments). A tool that reports an error returns ``is_error``.
        """
        connection, spec = self._resolve(name)
        server = connection.config.name
        with self._tracer.start_as_current_span(
            f"tools/call {name}",
            kind=SpanKind.CLIENT,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "crm.mcp.server": server,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await self._call(connection, spec, arguments)
            except ToolUnavailableError as error:
                self._observe(span, server, name, _OUTCOME_BY_REASON[error.reason], None)
                raise
            except InvalidArgumentError:
                self._observe(span, server, name, "invalid", None)
                raise
            outcome = "tool_error" if result.is_error else "ok"
            self._observe(span, server, name, outcome, result.duration)
            return result

    def _resolve(self, name: str) -> tuple[ServerConnection, ToolSpec]:
        prefix, _, tool = name.partition(TOOL_SEPARATOR)
        connection = self._connections.get(prefix)
        if connection is None:
            raise NotFoundError(f"no MCP tool {name!r} is allowed", reason=MCP_TOOL_NOT_FOUND)
        spec = connection.tools.get(tool)
        if spec is not None:
            return connection, spec
        if connection.sessions_opened == 0 and connection.config.allows(tool):
            # Never listed yet: the tool may well exist once the server is up.
            raise ToolUnavailableError(
                f"MCP tool {name} unavailable: server {connection.config.name} has not been up",
                reason=MCP_SERVER_UNAVAILABLE,
                server=connection.config.name,
                tool=name,
            )
        raise NotFoundError(f"no MCP tool {name!r} is allowed", reason=MCP_TOOL_NOT_FOUND)

    async def _call(
        self, connection: ServerConnection, spec: ToolSpec, arguments: Mapping[str, Any] | None
    ) -> ToolResult:
        config = connection.config
        if not await self._store.admit(config.name, self._clock(), config.breaker):
            raise self._unavailable(spec, MCP_CIRCUIT_OPEN, "its circuit is open")
        session = connection.session
        if session is None:
            await self._failed(config)
            raise self._unavailable(spec, MCP_SERVER_UNAVAILABLE, f"it is {connection.state}")
        started = time.perf_counter()
        try:
            result = await self._send(session, config, spec, arguments)
        except MCPError as error:
            if error.code in _CALLER_CODES:
                await self._store.record_success(config.name)
                raise InvalidArgumentError(
                    f"MCP server {config.name} refused {spec.name}: {error.message}",
                    reason=MCP_INVALID_CALL,
                ) from error
            await self._failed(config)
            if error.code == types.REQUEST_TIMEOUT:
                raise self._timeout(spec, config) from error
            if error.code in _SESSION_LOST_CODES:
                connection.end(session, f"call failed: {error.message}")
            raise self._unavailable(
                spec, MCP_SERVER_ERROR, f"it failed the call: {error.message}"
            ) from error
        except TimeoutError as error:
            await self._failed(config)
            raise self._timeout(spec, config) from error
        except (ValidationError, RuntimeError) as error:
            # An answer that is no CallToolResult (or asks for input we cannot give).
            await self._failed(config)
            raise self._unavailable(spec, MCP_SERVER_ERROR, f"bad answer: {error}") from error
        await self._store.record_success(config.name)
        return ToolResult(
            name=spec.name,
            server=config.name,
            is_error=result.is_error,
            text="\n".join(c.text for c in result.content if isinstance(c, types.TextContent)),
            structured=result.structured_content,
            content=tuple(result.content),
            duration=time.perf_counter() - started,
        )

    async def _send(
        self,
        session: ClientSession,
        config: McpServerConfig,
        spec: ToolSpec,
        arguments: Mapping[str, Any] | None,
    ) -> types.CallToolResult:
        timeout = config.timeouts.call
        # The SDK's request timeout answers first; the backstop holds should it not.
        async with asyncio.timeout(timeout + _TIMEOUT_GRACE):
            result = await session.call_tool(
                spec.tool, dict(arguments or {}), read_timeout_seconds=timeout
            )
        if not isinstance(result, types.CallToolResult):
            raise RuntimeError(f"unexpected {type(result).__name__}")
        return result

    async def _failed(self, config: McpServerConfig) -> None:
        if await self._store.record_failure(config.name, self._clock(), config.breaker):
            _log.warning(
                "circuit of MCP server %s opened for %.0f s", config.name, config.breaker.cooldown
            )

    @staticmethod
    def _unavailable(spec: ToolSpec, reason: str, why: str) -> ToolUnavailableError:
        return ToolUnavailableError(
            f"MCP tool {spec.name} unavailable: server {spec.server}: {why}",
            reason=reason,
            server=spec.server,
            tool=spec.name,
        )

    def _timeout(self, spec: ToolSpec, config: McpServerConfig) -> ToolUnavailableError:
        return self._unavailable(
            spec, MCP_TOOL_TIMEOUT, f"no answer within {config.timeouts.call:g} s"
        )

    def _observe(
        self, span: Span, server: str, name: str, outcome: str, duration: float | None
    ) -> None:
        if outcome not in ("ok", "tool_error"):
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, outcome))
        if self._metrics is not None:
            self._metrics.calls.labels(server=server, tool=name, outcome=outcome).inc()
            if duration is not None:
                self._metrics.duration.labels(server=server, outcome=outcome).observe(duration)

    def _state_changed(self, server: str, state: ServerState) -> None:
        if self._metrics is not None:
            self._metrics.set_state(server, state)
