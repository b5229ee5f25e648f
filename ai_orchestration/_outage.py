"""Warnings about a dependency that keeps failing, at most one a minute per place.

A part that carries on without Redis (the breakers admit calls, the caches miss, runs are
claimed from the database) meets the outage on every call: logging each time wrote a line per
LLM call, and a saturated event loop, where Redis replies arrive after their timeout, made 730
lines in 15 s of 500 concurrent runs. :class:`OutageLog` logs the first failure at once, then
at most one line per interval, saying how many it left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["OUTAGE_WARNING_SECONDS", "OutageLog"]

OUTAGE_WARNING_SECONDS: Final[float] = 60.0
"""Shortest time between two warnings of one :class:`OutageLog`."""


class OutageLog:
    """Rate-limited warnings of one place that tolerates a failing dependency."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = OUTAGE_WARNING_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._next = float("-inf")
        self._left_out = 0

    @property
    def left_out(self) -> int:
        """Failures not logged since the last warning."""
        return self._left_out

    def failed(self, message: str, *args: object) -> None:
        """Logs ``message % args`` as a warning, unless one was logged less than ``every``
        seconds ago; the next warning then counts the failures left out."""
        now = self._clock()
        if now < self._next:
            self._left_out += 1
            return
        self._next = now + self._every
        if self._left_out:
            message += " (%d more since the last warning)"
            args = (*args, self._left_out)
            self._left_out = 0
        self._logger.warning(message, *args)
