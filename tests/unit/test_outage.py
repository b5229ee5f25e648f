"""Warnings about a failing dependency: the first at once, then one per interval with a count."""

from __future__ import annotations

import logging

import pytest

from ai_orchestration._outage import OutageLog

LOGGER = "tests.outage"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_failure_is_logged_then_one_a_minute_with_what_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = OutageLog(logging.getLogger(LOGGER), every=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(5):
            outage.failed("store unreachable; admitting call to %s", "fast")
        assert [r.getMessage() for r in caplog.records] == [
            "store unreachable; admitting call to fast"
        ]
        assert outage.left_out == 4
        clock.now += 59.9
        outage.failed("store unreachable; admitting call to %s", "fast")
        assert len(caplog.records) == 1  # still within the minute
        clock.now += 0.1
        outage.failed("store unreachable; admitting call to %s", "slow")
        clock.now += 61
        outage.failed("back to one at a time")
    assert [r.getMessage() for r in caplog.records] == [
        "store unreachable; admitting call to fast",
        "store unreachable; admitting call to slow (5 more since the last warning)",
        "back to one at a time",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert outage.left_out == 0
