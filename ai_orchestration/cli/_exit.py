"""Exit codes of ``ai-orchestration``, the same for every command."""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK: Final = 0
"""The command did what was asked (``health``: every service is SERVING)."""
EXIT_FAILURE: Final = 1
"""An RPC failed, a service is not SERVING, some rows were bad, a run did not succeed, or the
server could not start (busy port, unreachable database)."""
EXIT_USAGE: Final = 2
"""The command line or the AIO_* configuration is wrong (click's usage errors are 2 too)."""
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C."""
