"""The MCP servers file: defaults, environment references and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_orchestration.config import Settings
from ai_orchestration.tools import McpConfigError, load_servers, parse_servers

_FULL = """
servers:
  - name: enrichment
    transport: streamable_http
    url: https://enrichment.example/mcp
    headers:
      Authorization: os.environ/ENRICHMENT_AUTH
      X-Team: crm
    allowed_tools: [lookup_company]
    prefix: enrich
    timeouts: {connect: 3, call: 12, read: 7}
    health_interval: 15
    reconnect: {base_delay: 0.2, max_delay: 10}
    breaker: {allowed_fails: 2, window: 30, cooldown: 5}
  - name: files
    transport: stdio
    command: python
    args: [-m, files_server, --root, /data]
    env: {TOKEN: os.environ/FILES_TOKEN}
    allowed_tools: ["*"]
"""


def test_a_full_file_parses_with_references_resolved() -> None:
    enrichment, files = parse_servers(
        _FULL, environ={"ENRICHMENT_AUTH": "Bearer abc", "FILES_TOKEN": "t"}
    )
    assert enrichment.headers == {"Authorization": "Bearer abc", "X-Team": "crm"}
    assert enrichment.exposed_name("lookup_company") == "enrich__lookup_company"
    assert enrichment.allows("lookup_company")
    assert not enrichment.allows("delete_company")
    assert (enrichment.timeouts.connect, enrichment.timeouts.call) == (3.0, 12.0)
    assert enrichment.timeouts.read == 7.0
    assert enrichment.reconnect.max_delay == 10.0
    assert enrichment.breaker.failure_threshold == 3
    assert enrichment.breaker.cooldown == 5.0
    assert files.transport == "stdio"
    assert files.args == ("-m", "files_server", "--root", "/data")
    assert files.env == {"TOKEN": "t"}
    assert files.tool_prefix == "files"
    assert files.allows("anything")


def test_an_empty_file_has_no_servers() -> None:
    assert parse_servers("", environ={}) == ()


def test_load_reads_the_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text(_FULL, encoding="utf-8")
    assert len(load_servers(path, environ={"ENRICHMENT_AUTH": "a", "FILES_TOKEN": "b"})) == 2
    with pytest.raises(McpConfigError, match="cannot read") as caught:
        load_servers(tmp_path / "missing.yaml", environ={})
    assert caught.value.source == str(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("entry", "path", "problem"),
    [
        (
            "{name: a, transport: stdio, command: x}",
            "servers[0].allowed_tools",
            "required",
        ),
        (
            "{name: a, transport: sse, url: 'http://h/mcp', allowed_tools: []}",
            "servers[0].transport",
            "expected one of",
        ),
        (
            "{name: a.b, transport: stdio, command: x, allowed_tools: []}",
            "servers[0].name",
            "no dots",
        ),
        (
            "{name: a, prefix: x__y, transport: stdio, command: x, allowed_tools: []}",
            "servers[0].prefix",
            "no '__'",
        ),
        (
            "{name: a, transport: streamable_http, url: 'http://h/mcp', allowed_tools: [],"
            " headers: {Authorization: os.environ/NOT_SET_ANYWHERE}}",
            "servers[0].headers.Authorization",
            "NOT_SET_ANYWHERE is not set",
        ),
        (
            "{name: a, transport: stdio, command: x, allowed_tools: [], env: {T: os.environ/NOPE}}",
            "servers[0].env.T",
            "NOPE is not set",
        ),
        (
            "{name: a, transport: stdio, url: 'http://h', command: x, allowed_tools: []}",
            "servers[0].url",
            "only for transport streamable_http",
        ),
        (
            "{name: a, transport: streamable_http, url: 'ftp://h', allowed_tools: []}",
            "servers[0].url",
            "http:// or https://",
        ),
        (
            "{name: a, transport: stdio, command: x, allowed_tools: [], timeouts: {call: -1}}",
            "servers[0].timeouts.call",
            "positive number",
        ),
        (
            "{name: a, transport: stdio, command: x, allowed_tools: [], breaker: {cooldown: 0}}",
            "servers[0].breaker.cooldown",
            "positive number",
        ),
        (
            "{name: a, transport: stdio, command: x, allowed_tools: [], retries: 3}",
            "servers[0].retries",
            "unknown key",
        ),
        ("{name: a, transport: stdio, allowed_tools: []}", "servers[0].command", "required"),
    ],
)
def test_invalid_entries_name_the_key(entry: str, path: str, problem: str) -> None:
    with pytest.raises(McpConfigError) as caught:
        parse_servers(f"servers: [{entry}]", environ={})
    assert caught.value.path == path
    assert problem in caught.value.problem
    assert path in str(caught.value)


def test_names_and_prefixes_must_be_unique() -> None:
    twice = "{name: a, transport: stdio, command: x, allowed_tools: []}"
    with pytest.raises(McpConfigError) as caught:
        parse_servers(f"servers: [{twice}, {twice}]", environ={})
    assert caught.value.path == "servers[1].name"
    clash = "{name: b, prefix: a, transport: stdio, command: x, allowed_tools: []}"
    with pytest.raises(McpConfigError) as caught:
        parse_servers(f"servers: [{twice}, {clash}]", environ={})
    assert caught.value.path == "servers[1].prefix"


def test_bad_yaml_and_a_bad_root_are_errors() -> None:
    with pytest.raises(McpConfigError, match="not valid YAML"):
        parse_servers("servers: [", environ={})
    with pytest.raises(McpConfigError, match="expected a list"):
        parse_servers("servers: {a: 1}", environ={})


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIO_MCP_SERVERS_FILE", "/etc/aio/mcp.yaml")
    assert Settings().mcp_servers_file == "/etc/aio/mcp.yaml"
