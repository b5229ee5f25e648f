"""The in-memory cache of customers' vectors: stamps, bounds, age, forgetting."""

from __future__ import annotations

import numpy as np

from ai_orchestration.storage import CustomerVectors


def _matrix(rows: int) -> np.ndarray:
    return np.ones((rows, 384), dtype=np.float32)


def test_an_entry_serves_only_its_stamp() -> None:
    cache = CustomerVectors()
    cache.put("acme", "c1", (2, 7), [3, 7], _matrix(2))
    hit = cache.get("acme", "c1", (2, 7))
    assert hit is not None and hit[0] == [3, 7]
    assert cache.get("acme", "c2", (2, 7)) is None
    assert cache.get("globex", "c1", (2, 7)) is None
    assert cache.get("acme", "c1", (3, 9)) is None  # a new vector: reload
    assert cache.get("acme", "c1", (2, 7)) is None  # and the stale entry is gone


def test_bytes_bound_evicts_the_least_recently_used() -> None:
    one = _matrix(10).nbytes
    cache = CustomerVectors(max_bytes=2 * one)
    cache.put("t", "a", (10, 1), list(range(10)), _matrix(10))
    cache.put("t", "b", (10, 2), list(range(10)), _matrix(10))
    assert cache.get("t", "a", (10, 1)) is not None  # a is now the most recent
    cache.put("t", "c", (10, 3), list(range(10)), _matrix(10))
    assert cache.get("t", "b", (10, 2)) is None
    assert cache.get("t", "a", (10, 1)) is not None
    cache.put("t", "huge", (30, 4), list(range(30)), _matrix(30))  # larger than the cache
    assert cache.get("t", "huge", (30, 4)) is None
    assert cache.get("t", "c", (10, 3)) is not None


def test_entries_age_out_and_can_be_forgotten() -> None:
    now = [0.0]
    cache = CustomerVectors(max_age_seconds=60, monotonic=lambda: now[0])
    cache.put("t", "a", (1, 1), [1], _matrix(1))
    cache.put("t", "b", (1, 2), [2], _matrix(1))
    cache.forget("t", "b")
    assert cache.get("t", "b", (1, 2)) is None
    now[0] = 61.0
    assert cache.get("t", "a", (1, 1)) is None
