"""The one check of every ``Timestamp`` and ``Duration`` in a request, wherever it sits.

protovalidate checks the ranges the protos declare, but a ``Timestamp`` with ``nanos`` of
1,000,000,000 or a ``Duration`` of 4.6e18 seconds is no valid value at all: converting it raises
(``ValueError``, ``OverflowError``) in whatever handler reads it, and comparing it with a
declared bound is not well defined. So before the declared rules run, every time and duration
of the request, at any depth, in lists and maps too, must be a value the well-known types allow:

- ``Timestamp``: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, ``nanos`` 0 to
  999,999,999;
- ``Duration``: at most 10,000 years either way, ``nanos`` within a second and of the same sign
  as ``seconds``.

The fields to visit are worked out once per message type (only those that can hold a time), so a
batch of 10,000 leads costs one attribute read per lead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from ai_orchestration.errors import FieldViolation

__all__ = ["invalid_times"]

_TIMESTAMP: Final = "google.protobuf.Timestamp"
_DURATION: Final = "google.protobuf.Duration"
_MIN_SECONDS: Final = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS: Final = 315_576_000_000  # 10,000 years
_NANOS: Final = 999_999_999


def invalid_times(message: Message) -> list[FieldViolation]:
    """One violation per ``Timestamp`` or ``Duration`` of ``message`` that is not a valid value,
    with its field path (``leads[3].create_time``)."""
    return list(_walk(message, ""))


@functools.cache
def _time_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The fields of ``descriptor`` that are, or may hold, a time or a duration."""
    return tuple(
        field
        for field in descriptor.fields
        if field.message_type is not None and _holds_times(field.message_type, frozenset())
    )


def _holds_times(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in (_TIMESTAMP, _DURATION):
        return True
    if descriptor.full_name in seen:  # a recursive type holds times only through its fields
        return False
    inner = seen | {descriptor.full_name}
    return any(
        f.message_type is not None and _holds_times(f.message_type, inner)
        for f in descriptor.fields
    )


def _walk(message: Message, path: str) -> Iterator[FieldViolation]:
    for field in _time_fields(message.DESCRIPTOR):
        where = f"{path}{field.name}"
        value = getattr(message, field.name)
        entry = field.message_type is not None and field.message_type.GetOptions().map_entry
        if entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from _item(item, f'{where}["{key}"]')
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _item(item, f"{where}[{index}]")
        elif message.HasField(field.name):
            yield from _item(value, where)


def _item(value: Message, where: str) -> Iterator[FieldViolation]:
    kind = value.DESCRIPTOR.full_name
    if kind == _TIMESTAMP:
        if problem := _timestamp_problem(value.seconds, value.nanos):  # type: ignore[attr-defined]
            yield FieldViolation(where, problem, "timestamp_valid")
    elif kind == _DURATION:
        if problem := _duration_problem(value.seconds, value.nanos):  # type: ignore[attr-defined]
            yield FieldViolation(where, problem, "duration_valid")
    else:
        yield from _walk(value, f"{where}.")


def _timestamp_problem(seconds: int, nanos: int) -> str:
    if not 0 <= nanos <= _NANOS:
        return f"nanos must be from 0 to {_NANOS}, got {nanos}"
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        return (
            "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z "
            f"(seconds {_MIN_SECONDS} to {_MAX_SECONDS}), got seconds {seconds}"
        )
    return ""


def _duration_problem(seconds: int, nanos: int) -> str:
    if not -_NANOS <= nanos <= _NANOS:
        return f"nanos must be from -{_NANOS} to {_NANOS}, got {nanos}"
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        return "seconds and nanos must have the same sign"
    if not -_MAX_DURATION_SECONDS <= seconds <= _MAX_DURATION_SECONDS:
        return f"must be within 10,000 years (|seconds| <= {_MAX_DURATION_SECONDS})"
    return ""
