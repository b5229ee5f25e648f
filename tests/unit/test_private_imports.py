"""No module imports another package's private module: what a package offers is in its
``__init__``."""

from __future__ import annotations

import re
from pathlib import Path

import ai_orchestration

_ROOT = Path(ai_orchestration.__file__).resolve().parent
_IMPORT = re.compile(r"^\s*(?:from|import)\s+ai_orchestration\.([\w.]+)", re.MULTILINE)


def _package(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def test_no_import_reaches_into_another_packages_private_module() -> None:
    offenders: list[str] = []
    for path in sorted(_ROOT.rglob("*.py")):
        own = path.relative_to(_ROOT).parts[0].removesuffix(".py")
        for match in _IMPORT.finditer(path.read_text(encoding="utf-8")):
            target = match.group(1)
            parts = target.split(".")
            private = any(part.startswith("_") for part in parts[1:])
            if private and _package(target) != own:
                offenders.append(f"{path.relative_to(_ROOT)} imports ai_orchestration.{target}")
    assert offenders == []
