"""Logging set-up: one line per record, with the correlation id where there is one."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    if getattr(root, "_aio_configured", False):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._aio_configured = True  # type: ignore[attr-defined]
