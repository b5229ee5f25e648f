"""Reading the service's YAML configuration files (the LLM routing file, the MCP servers file).

One error shape for every file, naming the file and the dotted path of the bad key, and the
typed reads both files' readers start from, with ``os.environ/NAME`` values resolved from the
environment at load time (so secrets stay out of the files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["ENV_PREFIX", "ConfigFileError", "DocumentReader"]

ENV_PREFIX: Final[str] = "os.environ/"
"""A value ``os.environ/NAME`` is replaced by the variable ``NAME``."""


class ConfigFileError(ValueError):
    """A configuration file is invalid; the message names the file and the bad key."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}")
        self.source = source
        """The file (or ``<string>``, ``<default>``) the config came from."""
        self.path = path
        """Dotted path of the offending key, e.g. ``servers[1].headers.Authorization``."""
        self.problem = problem
        """What is wrong."""


@dataclass(frozen=True, slots=True)
class DocumentReader:
    """Typed access to a parsed YAML document that reports the path of every bad value;
    subclasses add the reads of their own file and name their error type in :meth:`fail`."""

    source: str
    environ: Mapping[str, str]

    def fail(self, path: str, problem: str) -> ConfigFileError:
        """The error for ``path`` (raise it)."""
        return ConfigFileError(self.source, path or "<root>", problem)

    def mapping(self, value: object, path: str) -> dict[str, object]:
        """``value`` as a mapping with string keys."""
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def sequence(self, value: object, path: str) -> list[object]:
        """``value`` as a list (absent: empty)."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {type(value).__name__}")
        return value

    def resolve(self, value: str, path: str) -> str:
        """``value``, or the variable an ``os.environ/NAME`` value names (unset or empty: an
        error naming it)."""
        if not value.startswith(ENV_PREFIX):
            return value
        name = value.removeprefix(ENV_PREFIX)
        resolved = self.environ.get(name)
        if not resolved:
            raise self.fail(path, f"environment variable {name} is not set")
        return resolved
