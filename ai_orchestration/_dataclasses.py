"""A dataclass decorator for the value objects built once per lead on hot paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def frozen_record(cls: type[_T]) -> type[_T]:
    """A slotted dataclass that type checkers treat as frozen (``mypy`` rejects assignments to
    its fields) but that is built like a plain one at run time.

    ``@dataclass(frozen=True)`` sets every field through ``object.__setattr__``: building a
    14-field record took 2.0 us against 0.27 us, once per lead of every batch. Instances hash
    and compare by value, as frozen dataclasses do.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)
