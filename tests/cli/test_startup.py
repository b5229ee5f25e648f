"""Client commands load the client package only: no server, storage, models or LLM stack."""

from __future__ import annotations

import json
import subprocess
import sys

from ai_orchestration.cli import main

PROBE = """
import json, sys
from ai_orchestration.cli import main
try:
    main(["runs", "--help"])
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {
        "ai_orchestration", "litellm", "sqlalchemy", "langgraph", "lightgbm", "sklearn", "numpy"})
    print(json.dumps(loaded), file=sys.stderr)
"""


def test_the_client_side_imports_nothing_of_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stderr.splitlines()[-1])
    assert loaded, "the probe saw no module at all"
    assert all(
        name.startswith("ai_orchestration.cli") or name == "ai_orchestration" for name in loaded
    )
    assert "ai_orchestration.cli._server" not in loaded
    assert "tail" in done.stdout


def test_main_returns_the_exit_code() -> None:
    assert main(["--help"]) == 0
    assert main(["runs", "get"]) == 2  # missing RUN_ID: a usage error
