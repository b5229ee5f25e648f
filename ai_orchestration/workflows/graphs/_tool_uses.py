"""External tools (MCP servers, through the server's tool pool) that agents consult.

Which tool an agent calls, and with which arguments, is configuration, not the model's choice:
the bundled model is small, and a call to another system is a decision. The ``agents`` section
of the MCP servers file (``AIO_MCP_SERVERS_FILE``) lists, per agent, the exposed tools and
their arguments as templates over the subject's fields::

    agents:
      lead_analysis:
        - tool: enrich__lookup_company
          arguments: {company: "{company}", domain: "{email_domain}"}
          label: Company profile          # heads the context line (default: the tool)
          max_chars: 400                  # of the answer shown (default 500)
      customer_follow_up:
        - tool: crm__account_status
          arguments: {customer_id: "{customer_id}"}

A use whose fields the subject lacks is skipped. Each call is a ``tool_call``/``tool_result``
pair of run events and an ``execute_tool`` span. The answer is untrusted text: the injection
guard reads it first and a flagged answer is withheld; the rest is shown to the model as
context, never as instructions. A server that is down or open-circuit, a timeout or a tool
error degrades the step; the run goes on.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from ai_orchestration import errors

__all__ = [
    "AGENT_FIELDS",
    "ExternalAnswer",
    "ExternalToolUse",
    "ExternalTools",
    "load_tool_uses",
    "parse_tool_uses",
]

AGENT_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "lead_analysis": frozenset(
        {"lead_id", "company", "email_domain", "industry", "country", "job_title"}
    ),
    "customer_follow_up": frozenset({"customer_id", "company", "goal"}),
}
"""The agents that consult external tools, and the fields their argument templates may name."""
_DEFAULT_CHARS: Final[int] = 500
_MAX_CHARS: Final[int] = 4000
_MAX_USES: Final[int] = 5


class ExternalAnswer(Protocol):
    """What a tool answered (``tools.ToolResult``)."""

    @property
    def is_error(self) -> bool:
        """The tool ran and reported an error."""

    @property
    def text(self) -> str:
        """Its answer's text."""


class ExternalTools(Protocol):
    """The tool pool (``tools.ToolPool``): calls fail fast when a server is unavailable."""

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> ExternalAnswer:
        """Call exposed tool ``name``; raises an ``OrchestrationError`` when it cannot."""


@dataclass(frozen=True, slots=True)
class ExternalToolUse:
    """One configured call of an agent."""

    tool: str
    """The exposed (prefixed) tool name, ``<prefix>__<tool>``."""
    arguments: Mapping[str, str]
    """Argument templates over the agent's fields (:data:`AGENT_FIELDS`), ``"{company}"``."""
    label: str = ""
    """Heads the context line; the tool's name when empty."""
    max_chars: int = _DEFAULT_CHARS
    """Most characters of the answer shown to the model."""

    def render(self, fields: Mapping[str, str]) -> dict[str, str] | None:
        """The arguments for ``fields``; None when a field they name is empty."""
        rendered: dict[str, str] = {}
        for key, template in self.arguments.items():
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
            if any(not fields.get(name) for name in names):
                return None
            rendered[key] = template.format_map(fields)
        return rendered


def _refuse(source: str, key: str, why: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(f"{source}: {key}: {why}", reason="BAD_MCP_CONFIG")


def _use(
    entry: object, agent: str, key: str, allows: Callable[[str], bool], source: str
) -> ExternalToolUse:
    if not isinstance(entry, dict):
        raise _refuse(source, key, "must be a mapping with 'tool' and 'arguments'")
    unknown = set(entry) - {"tool", "arguments", "label", "max_chars"}
    if unknown:
        raise _refuse(source, key, f"unknown keys {sorted(unknown)}")
    tool = entry.get("tool")
    if not isinstance(tool, str) or not allows(tool):
        raise _refuse(
            source, f"{key}.tool", f"{tool!r} is not an allowed tool of a configured server "
            "(<prefix>__<tool>, the tool in the server's allowed_tools)",
        )  # fmt: skip
    arguments = entry.get("arguments") or {}
    if not isinstance(arguments, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in arguments.items()
    ):
        raise _refuse(source, f"{key}.arguments", "must map names to string templates")
    for name, template in arguments.items():
        try:
            named = {n for _, n, _, _ in string.Formatter().parse(template) if n}
        except ValueError as bad:
            raise _refuse(source, f"{key}.arguments.{name}", f"bad template: {bad}") from bad
        if named - AGENT_FIELDS[agent]:
            raise _refuse(
                source, f"{key}.arguments.{name}",
                f"names {sorted(named - AGENT_FIELDS[agent])}; {agent} has "
                f"{', '.join(sorted(AGENT_FIELDS[agent]))}",
            )  # fmt: skip
    label, max_chars = entry.get("label", ""), entry.get("max_chars", _DEFAULT_CHARS)
    if not isinstance(label, str):
        raise _refuse(source, f"{key}.label", "must be text")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int):
        raise _refuse(source, f"{key}.max_chars", "must be an integer")
    if not 1 <= max_chars <= _MAX_CHARS:
        raise _refuse(source, f"{key}.max_chars", f"must be within 1..{_MAX_CHARS}")
    return ExternalToolUse(tool, dict(arguments), label, max_chars)


def parse_tool_uses(
    document: object, *, allows: Callable[[str], bool], source: str = "<string>"
) -> dict[str, tuple[ExternalToolUse, ...]]:
    """The ``agents`` section of a parsed MCP servers file; ``allows``: whether an exposed
    tool name (``<prefix>__<tool>``) is one the configured servers allow.

    Raises:
        InvalidArgumentError: an unknown agent, tool or field, or a malformed entry (the
            message names the key).
    """
    root = document if isinstance(document, dict) else {}
    agents = root.get("agents") or {}
    if not isinstance(agents, dict):
        raise _refuse(source, "agents", "must map agent names to lists of tool uses")
    uses: dict[str, tuple[ExternalToolUse, ...]] = {}
    for agent, entries in agents.items():
        if agent not in AGENT_FIELDS:
            raise _refuse(
                source, f"agents.{agent}", f"unknown agent; known: {', '.join(AGENT_FIELDS)}"
            )
        if not isinstance(entries, list) or len(entries) > _MAX_USES:
            raise _refuse(source, f"agents.{agent}", f"must be a list of at most {_MAX_USES}")
        uses[agent] = tuple(
            _use(entry, agent, f"agents.{agent}[{i}]", allows, source)
            for i, entry in enumerate(entries)
        )
    return uses


def load_tool_uses(
    path: str | Path, *, allows: Callable[[str], bool]
) -> dict[str, tuple[ExternalToolUse, ...]]:
    """:func:`parse_tool_uses` of the file at ``path``."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_tool_uses(yaml.safe_load(text), allows=allows, source=str(path))
