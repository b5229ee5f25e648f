"""Times between protobuf's well-known types and aware datetimes, exact to the microsecond.

Faster than the types' own ``FromDatetime`` / ``ToDatetime`` (which go through
``calendar.timegm`` and Python-level checks): on a batch of leads or a stream of run events these
conversions are a visible part of the serving cost. Values are valid by the time they get here
(the API's request validation rejects out-of-range times, see ``api/_times.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["datetime_of", "duration", "timestamp"]

_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final[timedelta] = timedelta(microseconds=1)


def timestamp(value: datetime) -> Timestamp:
    """A protobuf timestamp of an aware datetime."""
    seconds, micros = divmod((value - _EPOCH) // _MICROSECOND, 1_000_000)
    return Timestamp(seconds=seconds, nanos=micros * 1000)


def datetime_of(stamp: Timestamp) -> datetime:
    """The aware (UTC) datetime of a protobuf timestamp, to the microsecond."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def duration(value: Duration) -> timedelta:
    """A protobuf duration as a timedelta."""
    return value.ToTimedelta()
