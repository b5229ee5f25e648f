"""Timestamps built by arithmetic equal protobuf's own conversion, to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.wire.times import timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 3, 6, 10, 41, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # negative seconds
        datetime(1960, 5, 1, 1, 2, 3, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2100, 2, 28, 23, 0, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_timestamp_matches_from_datetime(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value.astimezone(UTC))
    assert timestamp(value) == expected
    assert timestamp(value).ToDatetime(tzinfo=UTC) == value
