"""frozen_record: value semantics of a frozen dataclass, built like a plain one."""

from __future__ import annotations

import dataclasses

import pytest

from ai_orchestration._dataclasses import frozen_record


@frozen_record
class Point:
    x: int
    label: str = "p"


def test_records_compare_and_hash_by_value_and_have_slots() -> None:
    assert Point(1) == Point(1, "p") != Point(2)
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert not hasattr(Point(1), "__dict__")
    with pytest.raises(AttributeError):
        Point(1).z = 3  # type: ignore[attr-defined]  # slots: no new attributes
    assert dataclasses.replace(Point(1), x=5) == Point(5)
    assert dataclasses.is_dataclass(Point)
