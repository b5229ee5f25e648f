"""The MCP servers the service may call, read from a YAML file (``AIO_MCP_SERVERS_FILE``).

::

    servers:
      - name: enrichment                      # [A-Za-z0-9_-]; names the breaker and metrics
        transport: streamable_http            # or stdio
        url: http://enrichment:8080/mcp
        headers:
          Authorization: os.environ/ENRICHMENT_AUTHORIZATION   # resolved at load time
        allowed_tools: [lookup_company]       # required: the tools agents may call, or ["*"]
        prefix: enrich                        # default: the name; tools become enrich__<tool>
        timeouts:
          connect: 10                         # opening the session (handshake and discovery)
          call: 30                            # one tool call
          read: 30                            # any other request (ping, tools/list)
        health_interval: 30                   # seconds between pings of an idle session
        reconnect: {base_delay: 0.5, max_delay: 30}   # full jitter in [0, min(max, base*2**n)]
        breaker: {allowed_fails: 3, window: 60, cooldown: 30}
      - name: files
        transport: stdio
        command: python
        args: [-m, some_mcp_server]
        env: {API_TOKEN: os.environ/FILES_TOKEN}

A value ``os.environ/NAME`` is replaced by that variable; a missing one is an error naming
the key, as is every other invalid value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

import yaml

from ai_orchestration._config_files import ConfigFileError, DocumentReader
from ai_orchestration.llm import BreakerPolicy

__all__ = [
    "ALL_TOOLS",
    "TOOL_SEPARATOR",
    "McpConfigError",
    "McpServerConfig",
    "ReconnectPolicy",
    "ToolTimeouts",
    "load_servers",
    "parse_servers",
]

ALL_TOOLS: Final[str] = "*"
"""``allowed_tools: ["*"]`` allows every tool the server lists."""
TOOL_SEPARATOR: Final[str] = "__"
"""Between a server's prefix and its tool's name: ``enrich__lookup_company`` (LLM function
names allow no dots, so the separator is one MCP and every provider accept)."""
_NAME: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_))*$")
_TRANSPORTS: Final = ("stdio", "streamable_http")
_KEYS: Final = frozenset(
    {
        "name",
        "transport",
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "headers",
        "allowed_tools",
        "prefix",
        "timeouts",
        "health_interval",
        "reconnect",
        "breaker",
    }
)

Transport = Literal["stdio", "streamable_http"]


class McpConfigError(ConfigFileError):
    """The MCP servers file is invalid; the message names the file and the bad key (e.g.
    ``servers[1].headers.Authorization``)."""


@dataclass(frozen=True, slots=True)
class ToolTimeouts:
    """How long the requests to one server may take, in seconds; no request waits unbounded."""

    connect: float = 10.0
    """Opening the session: transport, handshake and the first tool listing."""
    call: float = 30.0
    """One tool call."""
    read: float = 30.0
    """Any other request (ping, tools/list); also the session's default read timeout."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Backoff between attempts to reopen a failed session (full jitter)."""

    base_delay: float = 0.5
    """Attempt ``n`` waits uniformly in ``[0, min(max_delay, base_delay * 2**n)]``."""
    max_delay: float = 30.0
    """Cap of the backoff."""


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One MCP server."""

    name: str
    """Unique name; keys the breaker, the metrics and the span attribute ``crm.mcp.server``."""
    transport: Transport
    """``stdio`` (a subprocess) or ``streamable_http``."""
    allowed_tools: frozenset[str]
    """Tools agents may call (server-side names); ``{"*"}`` allows every listed tool."""
    prefix: str = ""
    """Prefix of the exposed tool names (default: ``name``)."""
    command: str = ""
    """stdio: the program to start."""
    args: tuple[str, ...] = ()
    """stdio: its arguments."""
    env: Mapping[str, str] = field(default_factory=dict)
    """stdio: extra environment variables (references resolved)."""
    cwd: str | None = None
    """stdio: working directory."""
    url: str = ""
    """streamable_http: the endpoint."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """streamable_http: headers of every request (references resolved)."""
    timeouts: ToolTimeouts = field(default_factory=ToolTimeouts)
    """Request timeouts."""
    health_interval: float = 30.0
    """Seconds between pings while the session is idle."""
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    """Backoff of reopening the session."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """When the server's circuit opens and for how long."""

    @property
    def tool_prefix(self) -> str:
        """The prefix actually used (``prefix`` or ``name``)."""
        return self.prefix or self.name

    def exposed_name(self, tool: str) -> str:
        """The name agents call ``tool`` of this server by."""
        return f"{self.tool_prefix}{TOOL_SEPARATOR}{tool}"

    def allows(self, tool: str) -> bool:
        """Whether agents may call ``tool``."""
        return ALL_TOOLS in self.allowed_tools or tool in self.allowed_tools


def load_servers(path: Path | str, *, environ: Mapping[str, str]) -> tuple[McpServerConfig, ...]:
    """Read and validate an MCP servers file; ``environ`` resolves ``os.environ/`` values."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise McpConfigError(source, "<file>", f"cannot read: {exc.strerror}") from exc
    return parse_servers(text, environ=environ, source=source)


def parse_servers(
    text: str, *, environ: Mapping[str, str], source: str = "<string>"
) -> tuple[McpServerConfig, ...]:
    """Validate an MCP servers file given as YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise McpConfigError(source, "<yaml>", f"not valid YAML: {exc}") from exc
    reader = _Reader(source, environ)
    root = reader.mapping({} if document is None else document, "")
    entries = reader.sequence(root.get("servers"), "servers")
    servers = tuple(reader.server(entry, f"servers[{i}]") for i, entry in enumerate(entries))
    _check_unique(servers, source)
    return servers


def _check_unique(servers: tuple[McpServerConfig, ...], source: str) -> None:
    names: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for index, server in enumerate(servers):
        if server.name in names:
            raise McpConfigError(
                source,
                f"servers[{index}].name",
                f"{server.name!r} repeats servers[{names[server.name]}]",
            )
        if server.tool_prefix in prefixes:
            raise McpConfigError(
                source,
                f"servers[{index}].prefix",
                f"prefix {server.tool_prefix!r} repeats servers[{prefixes[server.tool_prefix]}]; "
                "tool names would collide",
            )
        names[server.name] = prefixes[server.tool_prefix] = index


@dataclass(frozen=True, slots=True)
class _Reader(DocumentReader):
    """The MCP servers file's reads."""

    def fail(self, path: str, problem: str) -> McpConfigError:
        return McpConfigError(self.source, path or "<root>", problem)

    def text(self, value: object, path: str) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(path, "expected a string")
        return self.resolve(str(value), path)

    def required(self, table: Mapping[str, object], key: str, path: str) -> str:
        value = table.get(key)
        text = "" if value is None else self.text(value, f"{path}.{key}")
        if not text.strip():
            raise self.fail(f"{path}.{key}", "required, expected a non-empty string")
        return text

    def identifier(self, value: str, path: str) -> str:
        if not _NAME.match(value):
            raise self.fail(
                path, f"{value!r}: use letters, digits, '-' and single '_' (no '__', no dots)"
            )
        return value

    def strings(self, table: Mapping[str, object], key: str, path: str) -> dict[str, str]:
        raw = self.mapping(table.get(key) or {}, f"{path}.{key}")
        return {name: self.text(item, f"{path}.{key}.{name}") for name, item in raw.items()}

    def seconds(self, table: Mapping[str, object], key: str, path: str, default: float) -> float:
        value = table.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(f"{path}.{key}", f"expected a positive number, got {value!r}")
        return float(value)

    def count(self, table: Mapping[str, object], key: str, path: str, default: int) -> int:
        value = table.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{path}.{key}", f"expected a whole number >= 0, got {value!r}")
        return value

    def server(self, value: object, path: str) -> McpServerConfig:
        entry = self.mapping(value, path)
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}", f"unknown key (known: {sorted(_KEYS)})")
        name = self.identifier(self.required(entry, "name", path), f"{path}.name")
        transport = self.required(entry, "transport", path)
        if transport not in _TRANSPORTS:
            raise self.fail(f"{path}.transport", f"{transport!r}: expected one of {_TRANSPORTS}")
        prefix = entry.get("prefix")
        tool_prefix = (
            name
            if prefix is None
            else self.identifier(self.text(prefix, f"{path}.prefix"), f"{path}.prefix")
        )
        timeouts = self.mapping(entry.get("timeouts") or {}, f"{path}.timeouts")
        reconnect = self.mapping(entry.get("reconnect") or {}, f"{path}.reconnect")
        breaker = self.mapping(entry.get("breaker") or {}, f"{path}.breaker")
        base = McpServerConfig(
            name=name,
            transport="stdio",
            allowed_tools=self.allowed(entry, path),
            prefix=tool_prefix,
            timeouts=ToolTimeouts(
                connect=self.seconds(timeouts, "connect", f"{path}.timeouts", 10.0),
                call=self.seconds(timeouts, "call", f"{path}.timeouts", 30.0),
                read=self.seconds(timeouts, "read", f"{path}.timeouts", 30.0),
            ),
            health_interval=self.seconds(entry, "health_interval", path, 30.0),
            reconnect=ReconnectPolicy(
                base_delay=self.seconds(reconnect, "base_delay", f"{path}.reconnect", 0.5),
                max_delay=self.seconds(reconnect, "max_delay", f"{path}.reconnect", 30.0),
            ),
            breaker=BreakerPolicy(
                allowed_fails=self.count(breaker, "allowed_fails", f"{path}.breaker", 3),
                window=self.seconds(breaker, "window", f"{path}.breaker", 60.0),
                cooldown=self.seconds(breaker, "cooldown", f"{path}.breaker", 30.0),
            ),
        )
        if transport == "stdio":
            for key in ("url", "headers"):
                if key in entry:
                    raise self.fail(f"{path}.{key}", "only for transport streamable_http")
            cwd = entry.get("cwd")
            return replace(
                base,
                command=self.required(entry, "command", path),
                args=tuple(
                    self.text(arg, f"{path}.args[{i}]")
                    for i, arg in enumerate(self.sequence(entry.get("args"), f"{path}.args"))
                ),
                env=self.strings(entry, "env", path),
                cwd=None if cwd is None else self.text(cwd, f"{path}.cwd"),
            )
        for key in ("command", "args", "env", "cwd"):
            if key in entry:
                raise self.fail(f"{path}.{key}", "only for transport stdio")
        url = self.required(entry, "url", path)
        if not url.startswith(("http://", "https://")):
            raise self.fail(f"{path}.url", f"{url!r}: expected an http:// or https:// URL")
        return replace(
            base, transport="streamable_http", url=url, headers=self.strings(entry, "headers", path)
        )

    def allowed(self, entry: Mapping[str, object], path: str) -> frozenset[str]:
        if "allowed_tools" not in entry:
            raise self.fail(
                f"{path}.allowed_tools",
                f'required: list the tools agents may call, or ["{ALL_TOOLS}"] for all of them',
            )
        items = self.sequence(entry["allowed_tools"], f"{path}.allowed_tools")
        tools = [self.text(item, f"{path}.allowed_tools[{i}]") for i, item in enumerate(items)]
        return frozenset(tool.strip() for tool in tools if tool.strip())
