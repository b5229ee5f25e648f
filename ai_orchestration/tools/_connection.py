"""One persistent MCP session per server, reopened with backoff after a failure.

A session is opened, used and closed by one task (the SDK's transports are anyio task groups,
which must be left by the task that entered them); calls from other tasks only send requests
on it. The task watches the session: a ``notifications/tools/list_changed`` lists the tools
again, an idle session is pinged every ``health_interval``, and a failed ping, a closed
connection or a terminated HTTP session ends it. After that the task waits a backoff with full
jitter (bounded by ``reconnect.max_delay``) and opens a new one, until the pool closes.

Every request has a timeout: the session's read timeout (``timeouts.read``), the call's own
(``timeouts.call``), and the handshake plus first listing within ``timeouts.connect``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from typing import Final, Literal

import httpx2
from mcp import ClientSession, StdioServerParameters, types
from mcp.client import Transport
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from ai_orchestration._outage import OutageLog
from ai_orchestration.tools._config import McpServerConfig

__all__ = ["ServerConnection", "ServerState", "ToolSpec"]

_log = logging.getLogger(__name__)

ServerState = Literal["connecting", "up", "down", "closed"]
_MAX_PAGES: Final[int] = 100
"""tools/list pages read at most: a server whose cursor never ends cannot hold discovery."""
_MIN_DELAY_SHARE: Final[float] = 0.1
"""Floor of a reconnect delay as a share of ``base_delay``, so no two attempts are back to back."""
_SSE_READ_TIMEOUT: Final[float] = 300.0
"""httpx read timeout: the standalone SSE stream of server notifications idles for long."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool agents may call, as its server listed it."""

    name: str
    """The exposed name, ``<prefix>__<tool>``."""
    server: str
    """The configured server name."""
    tool: str
    """The server's own name of the tool."""
    description: str
    """What the server says the tool does."""
    input_schema: Mapping[str, object]
    """JSON Schema of the arguments."""


class _SessionEndedError(Exception):
    """The watched session must be replaced (a failed ping, a closed connection)."""


class ServerConnection:
    """The session with one server, kept open by a task of its own."""

    def __init__(
        self,
        config: McpServerConfig,
        *,
        client_info: types.Implementation,
        on_state: Callable[[str, ServerState], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._client_info = client_info
        self._on_state = on_state
        self._rng = rng or random.Random()
        self._state: ServerState = "connecting"
        self._session: ClientSession | None = None
        self._tools: dict[str, ToolSpec] = {}
        self._wake = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._closing = False
        self._ended = ""
        self._list_changed = False
        self._task: asyncio.Task[None] | None = None
        self._outage = OutageLog(_log)
        self.sessions_opened = 0
        """Sessions opened so far (1 while the first one lives)."""
        self.last_error = ""
        """Why the last session ended or failed to open."""

    @property
    def state(self) -> ServerState:
        """Where the session is: ``connecting``, ``up``, ``down`` (backing off) or ``closed``."""
        return self._state

    @property
    def session(self) -> ClientSession | None:
        """The open session, or None while there is none."""
        return self._session if self._state == "up" else None

    @property
    def tools(self) -> Mapping[str, ToolSpec]:
        """Allowed tools of the last listing, by the server's names (kept while down)."""
        return self._tools

    def start(self) -> None:
        """Start the task that opens and keeps the session."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mcp-server:{self.config.name}")

    async def wait_first_attempt(self) -> None:
        """Return once the first session opened or failed to."""
        await self._first_attempt.wait()

    async def close(self) -> None:
        """Close the session and stop reopening it; safe to call twice."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            if self._state != "up":
                # Opening (bounded by timeouts.connect) or backing off: nothing to close cleanly.
                self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._set_state("closed")

    def end(self, session: ClientSession, why: str) -> None:
        """Replace ``session`` (if it is still the current one) because it failed."""
        if session is self._session and not self._ended:
            self._ended = why
            self._wake.set()

    async def ping(self) -> bool:
        """Ping the server now; a failure ends the session. False with no session."""
        session = self.session
        if session is None:
            return False
        try:
            await session.send_ping()
        except Exception as error:  # whatever the transport raised, the session is unusable
            self.end(session, f"ping failed: {_describe(error)}")
            return False
        return True

    def _set_state(self, state: ServerState) -> None:
        if state != self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(self.config.name, state)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._set_state("connecting")
            opened = self.sessions_opened
            try:
                await self._serve()
            except Exception as error:  # a server may fail in any way; the loop must outlive it
                self.last_error = _describe(error)
            finally:
                self._session = None
                self._first_attempt.set()
            if self._closing:
                break
            if self.sessions_opened > opened:
                attempt = 0
            self._set_state("down")
            self._outage.failed(
                "MCP server %s unavailable (%s); reopening its session with backoff",
                self.config.name,
                self.last_error,
            )
            await self._sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        policy = self.config.reconnect
        ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(attempt, 32))
        return max(policy.base_delay * _MIN_DELAY_SHARE, self._rng.uniform(0.0, ceiling))

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._closing:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _serve(self) -> None:
        timeouts = self.config.timeouts
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport(stack))
            session = await stack.enter_async_context(
                ClientSession(
                    read,
                    write,
                    read_timeout_seconds=timeouts.read,
                    message_handler=self._on_message,
                    client_info=self._client_info,
                )
            )
            # Reset before listing: a list_changed arriving during the listing lists again.
            self._ended, self._list_changed = "", False
            async with asyncio.timeout(timeouts.connect):
                await session.initialize()
                self._tools = await self._list_tools(session)
            self._session = session
            self.sessions_opened += 1
            self._set_state("up")
            self._first_attempt.set()
            if self.sessions_opened > 1:
                _log.info("MCP server %s: session reopened", self.config.name)
            await self._watch(session)

    def _transport(self, stack: AsyncExitStack) -> Transport:
        config = self.config
        if config.transport == "stdio":
            return stdio_client(
                StdioServerParameters(
                    command=config.command,
                    args=list(config.args),
                    env=dict(config.env) or None,
                    cwd=config.cwd,
                )
            )
        client = httpx2.AsyncClient(
            headers=dict(config.headers),
            timeout=httpx2.Timeout(
                config.timeouts.connect,
                read=max(_SSE_READ_TIMEOUT, config.timeouts.call, config.timeouts.read),
            ),
        )
        stack.push_async_callback(client.aclose)
        return streamable_http_client(config.url, http_client=client)

    async def _watch(self, session: ClientSession) -> None:
        while True:
            self._wake.clear()
            if self._closing:
                return
            if self._ended:
                raise _SessionEndedError(self._ended)
            if self._list_changed:
                self._list_changed = False
                self._tools = await self._list_tools(session)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.health_interval)
            except TimeoutError:
                await self.ping()

    async def _list_tools(self, session: ClientSession) -> dict[str, ToolSpec]:
        tools: dict[str, ToolSpec] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            for tool in page.tools:
                if self.config.allows(tool.name):
                    tools[tool.name] = ToolSpec(
                        name=self.config.exposed_name(tool.name),
                        server=self.config.name,
                        tool=tool.name,
                        description=tool.description or "",
                        input_schema=tool.input_schema,
                    )
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._list_changed = True
            self._wake.set()
        elif isinstance(message, Exception):
            _log.debug("MCP server %s: transport error %s", self.config.name, _describe(message))


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return _describe(error.exceptions[0])
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
