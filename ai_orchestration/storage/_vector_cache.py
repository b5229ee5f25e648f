"""Each customer's vectors kept in memory between questions (SQLite's per-customer scan).

Reading a customer's vectors from SQLite costs far more than scanning them, so a replica keeps
the matrix of the customers it was asked about, bounded in bytes (least recently used out) and
in age (so vectors of an erased customer leave every replica's memory soon). An entry is used
only while its stamp (how many vectors the customer has and the newest passage id among them)
still matches the database; any new vector or erasure changes the stamp and reloads it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = ["CustomerVectors", "Stamp"]

Stamp = tuple[int, int]
"""(vectors, newest passage id) of one customer."""
DEFAULT_MAX_BYTES: Final[int] = 256 * 1024 * 1024
DEFAULT_MAX_AGE_SECONDS: Final[float] = 300.0


@dataclass(frozen=True, slots=True)
class _Entry:
    stamp: Stamp
    ids: list[int]
    matrix: np.ndarray
    loaded_at: float


class CustomerVectors:
    """An LRU map from (tenant, customer) to that customer's ids and vector matrix."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0

    def get(
        self, tenant_id: str, customer_id: str, stamp: Stamp
    ) -> tuple[list[int], np.ndarray] | None:
        """The cached vectors if they are still those of ``stamp`` and young enough."""
        key = (tenant_id, customer_id)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.stamp != stamp or self._monotonic() - entry.loaded_at > self._max_age:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.ids, entry.matrix

    def put(
        self, tenant_id: str, customer_id: str, stamp: Stamp, ids: list[int], matrix: np.ndarray
    ) -> None:
        """Keep the customer's vectors; evicts the least recently used beyond the byte bound."""
        key = (tenant_id, customer_id)
        self._remove(key)
        if matrix.nbytes > self._max_bytes:
            return  # one customer larger than the whole cache: always read through
        self._entries[key] = _Entry(stamp, ids, matrix, self._monotonic())
        self._bytes += matrix.nbytes
        while self._bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def forget(self, tenant_id: str, customer_id: str) -> None:
        """Drop the customer's entry (erasure)."""
        self._remove((tenant_id, customer_id))

    def _remove(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.matrix.nbytes
