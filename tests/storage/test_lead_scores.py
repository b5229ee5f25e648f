"""LeadScoreRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ai_orchestration.scoring import (
    GLOBAL_OWNER,
    NewScoringModel,
    OutcomeRecord,
    ScoredOutcome,
    ScoreRecord,
)
from ai_orchestration.storage import (
    Database,
    InvalidPageTokenError,
    LeadOutcomeRepository,
    LeadScoreRepository,
    ScoringModelRepository,
)
from ai_orchestration.storage._models import LeadScoreModel

TENANT = "tenant-a"
T0 = datetime(2030, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture
def repo(database: Database) -> LeadScoreRepository:
    return LeadScoreRepository(database=database)


@pytest.fixture
def outcomes(database: Database) -> LeadOutcomeRepository:
    return LeadOutcomeRepository(database=database)


def _score(
    score_id: str,
    lead_id: str = "lead-1",
    *,
    seconds: float = 0,
    probability: float = 0.5,
    version: str = "v1",
    arm: str = "control",
    features: dict[str, Any] | None = None,
) -> ScoreRecord:
    scored_at = T0 + timedelta(seconds=seconds)
    return ScoreRecord(
        score_id=score_id,
        lead_id=lead_id,
        score=round(probability * 100),
        grade="B",
        probability=probability,
        confidence=0.75,
        positive_factors=[{"feature": "visits", "impact": 0.25}],
        negative_factors=[],
        model_version=version,
        experiment_arm=arm,
        scored_at=scored_at,
        expires_at=scored_at + timedelta(days=1),
        input_digest=f"digest-{score_id}",
        features=features if features is not None else {"score_id": score_id},
    )


def _outcome(lead_id: str, converted: bool) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_id=f"outcome-{lead_id}",
        lead_id=lead_id,
        converted=converted,
        outcome_time=T0 + timedelta(days=30),
        recorded_at=T0 + timedelta(days=31),
        features=None,
    )


async def _row_count(database: Database, tenant_id: str = TENANT) -> int:
    statement = select(func.count()).where(LeadScoreModel.tenant_id == tenant_id)
    async with database.sessionmaker() as session:
        return (await session.execute(statement)).scalar_one()


async def _walk(
    repo: LeadScoreRepository, lead_id: str, page_size: int
) -> tuple[list[ScoreRecord], int]:
    records: list[ScoreRecord] = []
    token = ""
    pages = 0
    while True:
        page, token = await repo.list_for_lead(
            TENANT, lead_id, page_size=page_size, page_token=token
        )
        pages += 1
        assert len(page) <= page_size
        records += page
        if not token:
            return records, pages
        assert pages < 200, "pagination does not terminate"


async def test_every_field_round_trips(repo: LeadScoreRepository) -> None:
    plus_two = timezone(timedelta(hours=2))
    record = ScoreRecord(
        score_id="score-1",
        lead_id="lead-ü",
        score=87,
        grade="A",
        probability=0.8712345678901234,
        confidence=0.3333333333333333,
        positive_factors=[
            {"feature": "visits", "impact": 0.4, "value": 12},
            {"feature": "email_domain", "impact": 0.1, "value": "example.com"},
        ],
        negative_factors=[{"feature": "bounced", "impact": -0.2, "value": True, "note": None}],
        model_version="global-20291123-1a2b3c",
        experiment_arm="treatment",
        scored_at=datetime(2030, 3, 4, 7, 6, 7, 891011, tzinfo=plus_two),
        expires_at=datetime(2030, 3, 5, 7, 6, 7, 891011, tzinfo=plus_two),
        input_digest="a" * 64,
        features={"visits": 12, "email_domain": "example.com", "tags": ["x", "y"], "age": None},
    )

    await repo.add_many(TENANT, [record])

    page, token = await repo.list_for_lead(TENANT, "lead-ü", page_size=10)
    assert token == ""
    expected = dataclasses.replace(
        record,
        scored_at=datetime(2030, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        expires_at=datetime(2030, 3, 5, 5, 6, 7, 891011, tzinfo=UTC),
    )
    assert page == [expected]
    assert page[0].scored_at.tzinfo is UTC
    assert page[0].expires_at.tzinfo is UTC
    assert type(page[0].probability) is float
    assert type(page[0].score) is int


async def test_empty_batch_is_a_no_op(repo: LeadScoreRepository, database: Database) -> None:
    statements: list[str] = []

    def record(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        await repo.add_many(TENANT, [])
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert statements == []
    assert await _row_count(database) == 0


async def test_ten_thousand_records_insert_in_a_few_statements(
    repo: LeadScoreRepository, database: Database
) -> None:
    records = [
        _score(f"score-{i:05d}", f"lead-{i % 100}", seconds=i, probability=(i % 97) / 97)
        for i in range(10_000)
    ]
    inserts: list[str] = []

    def record(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        await repo.add_many(TENANT, records)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)

    # One executemany (possibly split into pages by the driver), not one statement per row:
    # the statement count guards against a per-row regression (the speed is bench's business).
    assert 1 <= len(inserts) <= 20
    assert await _row_count(database) == 10_000
    page, _ = await repo.list_for_lead(TENANT, "lead-42", page_size=1)
    assert page == [records[9942]]


async def test_a_batch_is_all_or_nothing(repo: LeadScoreRepository, database: Database) -> None:
    existing = _score("score-3")
    await repo.add_many(TENANT, [existing])

    batch = [_score(f"score-{i}", seconds=i) for i in range(1, 6)]
    with pytest.raises(IntegrityError):
        await repo.add_many(TENANT, batch)

    assert await _row_count(database) == 1
    assert await repo.list_for_lead(TENANT, "lead-1", page_size=10) == ([existing], "")


async def test_list_for_lead_pages_newest_first(repo: LeadScoreRepository) -> None:
    records = [
        # Four scores share one instant: ordered by score_id descending among themselves.
        *[_score(f"tie-{c}", seconds=50) for c in "bdac"],
        *[_score(f"s-{i:02d}", seconds=i * 10) for i in range(12)],
        *[_score(f"other-{i}", "lead-2", seconds=i) for i in range(5)],
    ]
    await repo.add_many(TENANT, records)
    lead_1 = [r for r in records if r.lead_id == "lead-1"]
    expected = sorted(lead_1, key=lambda r: (r.scored_at, r.score_id), reverse=True)
    assert [r.score_id for r in expected[:9]] == [
        "s-11",
        "s-10",
        "s-09",
        "s-08",
        "s-07",
        "s-06",
        "tie-d",
        "tie-c",
        "tie-b",
    ]

    for page_size in (1, 3, 4, 5, 16, 100):
        walked, pages = await _walk(repo, "lead-1", page_size)
        assert walked == expected, page_size
        assert pages == max(1, -(-len(expected) // page_size)), page_size

    lead_2, _ = await _walk(repo, "lead-2", 2)
    assert [r.score_id for r in lead_2] == [f"other-{i}" for i in range(4, -1, -1)]
    assert await repo.list_for_lead(TENANT, "lead-3", page_size=5) == ([], "")


async def test_list_for_lead_rejects_foreign_and_edited_tokens(
    repo: LeadScoreRepository, database: Database
) -> None:
    await repo.add_many(
        TENANT, [_score(f"{lead}-{i}", lead, seconds=i) for i in range(3) for lead in ("l1", "l2")]
    )
    await repo.add_many("tenant-b", [_score(f"l1-{i}", "l1", seconds=i) for i in range(3)])
    _, token = await repo.list_for_lead(TENANT, "l1", page_size=1)
    _, token_b = await repo.list_for_lead("tenant-b", "l1", page_size=1)
    assert token
    assert token_b

    models = ScoringModelRepository(database=database)
    for hours in range(2):
        await models.add(
            GLOBAL_OWNER,
            NewScoringModel(f"g{hours}", "published", b"", {}, (), T0 + timedelta(hours=hours)),
        )
    _, model_token = await models.list_visible(TENANT, page_size=1)
    assert model_token

    padded = token + "=" * (-len(token) % 4)
    cursor, seal = json.loads(base64.urlsafe_b64decode(padded))
    earlier = (T0 - timedelta(days=1)).isoformat()
    edited = base64.urlsafe_b64encode(json.dumps([[earlier, cursor[1]], seal]).encode()).decode()

    rejected = [
        ("l2", token),  # another lead
        ("l1", token_b),  # another tenant
        ("l1", model_token),  # another list
        ("l1", edited),  # a moved cursor
        ("l1", token[::-1]),
        ("l1", "!"),
    ]
    for lead_id, bad in rejected:
        with pytest.raises(InvalidPageTokenError):
            await repo.list_for_lead(TENANT, lead_id, page_size=1, page_token=bad)
    with pytest.raises(InvalidPageTokenError):
        await models.list_visible(TENANT, page_size=1, page_token=token)
    page, _ = await repo.list_for_lead(TENANT, "l1", page_size=1, page_token=token)
    assert [r.score_id for r in page] == ["l1-1"]


async def test_latest_features_are_those_of_the_newest_score(repo: LeadScoreRepository) -> None:
    assert await repo.latest_features(TENANT, "lead-1") is None
    await repo.add_many(
        TENANT,
        [
            _score("s-1", seconds=10, features={"visits": 1}),
            _score("s-3", seconds=30, features={"visits": 3, "email": "a@example.com"}),
            _score("s-2", seconds=20, features={"visits": 2}),
            _score("s-9", "lead-2", seconds=90, features={"visits": 9}),
        ],
    )
    assert await repo.latest_features(TENANT, "lead-1") == {
        "visits": 3,
        "email": "a@example.com",
    }
    assert await repo.latest_features(TENANT, "lead-2") == {"visits": 9}
    # Same instant: the higher score_id is the later one, as in list_for_lead.
    await repo.add_many(
        TENANT,
        [
            _score("s-5", seconds=40, features={"visits": 5}),
            _score("s-4", seconds=40, features={"visits": 4}),
        ],
    )
    assert await repo.latest_features(TENANT, "lead-1") == {"visits": 5}


async def test_arm_counts_count_distinct_leads(repo: LeadScoreRepository) -> None:
    assert await repo.arm_counts(TENANT) == {}
    await repo.add_many(
        TENANT,
        [
            _score("s-1", "lead-1", version="v1", arm="control"),
            _score("s-2", "lead-1", version="v1", arm="control", seconds=5),
            _score("s-3", "lead-2", version="v1", arm="control"),
            _score("s-4", "lead-1", version="v2", arm="treatment"),
            _score("s-5", "lead-3", version="v2", arm="treatment"),
            _score("s-6", "lead-3", version="v2", arm="treatment", seconds=9),
            _score("s-7", "lead-3", version="v2", arm="treatment", seconds=19),
            _score("s-8", "lead-4", version="v1", arm="treatment"),
            _score("s-9", "lead-5", version="v1", arm=""),
        ],
    )
    await repo.add_many("tenant-b", [_score("s-1", "lead-9", version="v1", arm="control")])

    assert await repo.arm_counts(TENANT) == {
        ("v1", "control"): 2,
        ("v2", "treatment"): 2,
        ("v1", "treatment"): 1,
        ("v1", ""): 1,
    }


async def test_scored_outcomes_pair_the_latest_score_per_arm_with_the_outcome(
    repo: LeadScoreRepository, outcomes: LeadOutcomeRepository
) -> None:
    assert await repo.scored_outcomes(TENANT) == []
    await repo.add_many(
        TENANT,
        [
            # lead-1: two scores under (v1, control), the later one counts; one under v2.
            _score("s-01", "lead-1", seconds=10, probability=0.2, version="v1"),
            _score("s-02", "lead-1", seconds=20, probability=0.8, version="v1"),
            _score("s-03", "lead-1", seconds=15, probability=0.6, version="v2", arm="treatment"),
            # lead-2: scored at the same instant twice; the higher score_id wins the tie.
            _score("s-05", "lead-2", seconds=30, probability=0.35, version="v1"),
            _score("s-04", "lead-2", seconds=30, probability=0.45, version="v1"),
            # lead-3: scored, but no outcome yet.
            _score("s-06", "lead-3", seconds=40, probability=0.9, version="v1"),
            # lead-4: the same version under two arms.
            _score("s-07", "lead-4", seconds=50, probability=0.1, version="v2", arm="control"),
            _score("s-08", "lead-4", seconds=60, probability=0.7, version="v2", arm="treatment"),
        ],
    )
    await outcomes.record(TENANT, _outcome("lead-1", converted=True))
    await outcomes.record(TENANT, _outcome("lead-2", converted=False))
    await outcomes.record(TENANT, _outcome("lead-4", converted=True))
    # An outcome without any score contributes nothing.
    await outcomes.record(TENANT, _outcome("lead-5", converted=True))
    # Another tenant's outcome for a lead id that has scores here must not leak in.
    await outcomes.record("tenant-b", _outcome("lead-3", converted=True))

    assert await repo.scored_outcomes(TENANT) == [
        ScoredOutcome("lead-1", "v1", "control", 0.8, True),
        ScoredOutcome("lead-1", "v2", "treatment", 0.6, True),
        ScoredOutcome("lead-2", "v1", "control", 0.35, False),
        ScoredOutcome("lead-4", "v2", "control", 0.1, True),
        ScoredOutcome("lead-4", "v2", "treatment", 0.7, True),
    ]
    assert await repo.scored_outcomes(TENANT, limit=2) == [
        ScoredOutcome("lead-1", "v1", "control", 0.8, True),
        ScoredOutcome("lead-1", "v2", "treatment", 0.6, True),
    ]

    # The latest outcome counts.
    await outcomes.record(TENANT, _outcome("lead-2", converted=True))
    assert ScoredOutcome("lead-2", "v1", "control", 0.35, True) in await repo.scored_outcomes(
        TENANT
    )
    assert await repo.scored_outcomes("tenant-b") == []


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"score_id": ""}, "score_id"),
        ({"lead_id": ""}, "lead_id"),
        ({"model_version": ""}, "model_version"),
        ({"grade": "AB"}, "grade"),
        ({"grade": ""}, "grade"),
        ({"scored_at": datetime(2030, 1, 1)}, "scored_at must be timezone-aware"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at must be timezone-aware"),
    ],
)
async def test_add_many_rejects_bad_records(
    repo: LeadScoreRepository, database: Database, changes: dict[str, Any], complaint: str
) -> None:
    good = _score("s-0")
    bad = dataclasses.replace(_score("s-1"), **changes)
    with pytest.raises(ValueError, match=complaint):
        await repo.add_many(TENANT, [good, bad])
    assert await _row_count(database) == 0


async def test_other_methods_reject_bad_arguments(
    repo: LeadScoreRepository, database: Database
) -> None:
    with pytest.raises(ValueError, match="unique within a batch"):
        await repo.add_many(TENANT, [_score("s-1"), _score("s-1", seconds=1)])
    assert await _row_count(database) == 0
    with pytest.raises(ValueError, match="page_size"):
        await repo.list_for_lead(TENANT, "lead-1", page_size=0)
    with pytest.raises(ValueError, match="lead_id"):
        await repo.list_for_lead(TENANT, "", page_size=1)
    with pytest.raises(ValueError, match="lead_id"):
        await repo.latest_features(TENANT, "")
    with pytest.raises(ValueError, match="limit"):
        await repo.scored_outcomes(TENANT, limit=0)
