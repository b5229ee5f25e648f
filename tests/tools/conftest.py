"""Real MCP servers for the pool's tests: one over stdio, one over Streamable HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_orchestration.tools import McpServerConfig, parse_servers
from tests.fixtures.mcp_servers import ServerProcess, stdio_args

ROOT = Path(__file__).resolve().parents[2]


def stdio_entry(name: str, state: Path, **extra: Any) -> dict[str, Any]:
    """A ``servers:`` entry that runs test server ``name`` over stdio."""
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": stdio_args(name, state),
        "cwd": str(ROOT),
        "allowed_tools": ["*"],
        **extra,
    }


def http_entry(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A ``servers:`` entry for a test server over Streamable HTTP."""
    return {
        "name": name,
        "transport": "streamable_http",
        "url": url,
        "allowed_tools": ["*"],
        **extra,
    }


def servers(
    *entries: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[McpServerConfig, ...]:
    """Parse entries through the YAML loader, as the service reads its file."""
    return parse_servers(yaml.safe_dump({"servers": list(entries)}), environ=environ or {})


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Test server ``beta`` over Streamable HTTP on a loopback port."""
    server = ServerProcess("beta", tmp_path / "beta")
    server.start()
    yield server
    server.stop()
