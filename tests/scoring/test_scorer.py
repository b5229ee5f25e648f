"""The scorer's dynamic batching: every request is answered, whenever it arrives."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_orchestration.scoring import LeadInput, ScoringEngine, generate_leads
from ai_orchestration.scoring._scorer import score_ids
from ai_orchestration.storage import Database

LEADS = [LeadInput(f"burst-{i}", lead) for i, lead in enumerate(generate_leads(40, seed=3).leads)]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[ScoringEngine, Path]]:
    path = tmp_path / "scores.db"
    async with Database.from_url(f"sqlite:///{path}") as database:
        await database.migrate()
        started = ScoringEngine(database=database, bootstrap_rows=5_000)
        await started.start()
        yield started, path


async def test_bursts_are_all_answered_and_stored(engine: tuple[ScoringEngine, Path]) -> None:
    scoring, _ = engine
    first = [asyncio.ensure_future(scoring.scorer.score_one("t", lead)) for lead in LEADS[:20]]
    await asyncio.sleep(0)
    second = [asyncio.ensure_future(scoring.scorer.score_one("t", lead)) for lead in LEADS[20:]]
    records = await asyncio.wait_for(asyncio.gather(*first, *second), 60)
    assert [r.lead_id for r in records] == [lead.lead_id for lead in LEADS]
    history, _ = await scoring.scores.list_for_lead("t", "burst-0", page_size=10)
    assert [r.score_id for r in history] == [records[0].score_id]


async def test_a_request_arriving_during_the_last_store_is_answered(
    engine: tuple[ScoringEngine, Path],
) -> None:
    scoring, path = engine
    # Another connection holds SQLite's write lock, so the worker's INSERT waits (busy
    # timeout) with nothing else pending: the worker sits in its last store.
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        early = asyncio.ensure_future(scoring.scorer.score_one("t", LEADS[0]))
        await asyncio.sleep(0.5)  # computed; the store is blocked
        assert not early.done()
        late = asyncio.ensure_future(scoring.scorer.score_one("t", LEADS[1]))
        await asyncio.sleep(0.1)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    one, two = await asyncio.wait_for(asyncio.gather(early, late), 30)
    assert (one.lead_id, two.lead_id) == ("burst-0", "burst-1")


def test_score_ids_grow_with_scoring_time_and_position_and_are_unique() -> None:
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    first = score_ids(now, range(3))
    later = score_ids(now + timedelta(milliseconds=1), [0])
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first + later)
    assert first == sorted(first) and first[-1] < later[0]
    assert len(set(score_ids(now, [0] * 1000))) == 1000  # the random part tells them apart
