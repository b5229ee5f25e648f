"""Interactions, passages, full text, vectors and erasure, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from ai_orchestration.insights import (
    FOLLOW_UP_WORKFLOW,
    CompetitorList,
    Direction,
    IngestOutcome,
    Interaction,
    InteractionKind,
    NewInteraction,
    SentimentScorer,
    SignalExtractor,
    StoredInsight,
    chunk,
)
from ai_orchestration.storage import (
    CustomerInsightRepository,
    CustomerVectors,
    Database,
    InteractionRepository,
    RunRepository,
    customer_digest,
)
from ai_orchestration.workflows import RunState
from tests.storage._support import FakeClock

_EXTRACTOR = SignalExtractor(scorer=SentimentScorer())
_T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _interaction(
    interaction_id: str, body: str, *, customer: str = "cust-1", subject: str = "Renewal"
) -> Interaction:
    return Interaction(
        interaction_id=interaction_id,
        customer_id=customer,
        kind=InteractionKind.EMAIL,
        direction=Direction.INBOUND,
        occur_time=_T0 + timedelta(days=len(interaction_id)),
        subject=subject,
        body=body,
        participants=("ana@example.com",),
    )


def _new(interaction: Interaction) -> NewInteraction:
    return NewInteraction(
        interaction=interaction,
        signals=_EXTRACTOR.extract(interaction, CompetitorList()),
        chunks=tuple(chunk(interaction.text)),
    )


def _unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def repository(database: Database, clock: FakeClock) -> InteractionRepository:
    return InteractionRepository(database=database, clock=clock)


async def test_add_stores_once_and_tells_duplicates_from_conflicts(
    repository: InteractionRepository,
) -> None:
    first = _interaction("e-1", "We want to renew for two more years.")
    edited = _interaction("e-1", "We will not renew.")
    outcomes = await repository.add("acme", [_new(first), _new(first), _new(edited)])
    assert outcomes == [IngestOutcome.INGESTED, IngestOutcome.DUPLICATE, IngestOutcome.CONFLICT]
    again = await repository.add("acme", [_new(edited), _new(first)])
    assert again == [IngestOutcome.CONFLICT, IngestOutcome.DUPLICATE]
    history = await repository.history("acme", "cust-1")
    assert [stored.interaction for stored in history] == [first]
    # Another tenant's same id is another interaction.
    assert await repository.add("globex", [_new(edited)]) == [IngestOutcome.INGESTED]


async def test_history_keeps_signals_and_order(repository: InteractionRepository) -> None:
    late = _interaction("e-222", "This is unacceptable. We are cancelling our contract.")
    early = _interaction("e-1", "Thanks, the onboarding went great!")
    await repository.add("acme", [_new(late), _new(early)])
    history = await repository.history("acme", "cust-1")
    assert [s.interaction.interaction_id for s in history] == ["e-1", "e-222"]
    assert history[1].signals.churn_intent
    assert history[1].signals.sentiment.score < 0 < history[0].signals.sentiment.score
    since = await repository.history("acme", "cust-1", since=late.occur_time)
    assert [s.interaction.interaction_id for s in since] == ["e-222"]


async def test_full_text_finds_passages_of_that_customer_only(
    repository: InteractionRepository,
) -> None:
    await repository.add(
        "acme",
        [
            _new(_interaction("e-1", "The invoice for March was wrong. Please fix the invoice.")),
            _new(_interaction("e-2", "Lunch next week?")),
            _new(_interaction("e-3", "Our invoice is late.", customer="cust-2")),
        ],
    )
    await repository.add("globex", [_new(_interaction("e-4", "Another invoice question."))])
    hits = await repository.search_text("acme", "cust-1", "What about the invoices?", 5)
    passages = await repository.passages("acme", [h.passage_id for h in hits])
    assert {p.interaction_id for p in passages} == {"e-1"}
    assert all("invoice" in p.text.lower() for p in passages)
    # Offsets index the interaction's text: subject, blank line, body.
    source = _interaction("e-1", "The invoice for March was wrong. Please fix the invoice.").text
    assert source[passages[0].start : passages[0].end] == passages[0].text
    # Words that match nothing, or nothing searchable at all, find nothing.
    assert await repository.search_text("acme", "cust-1", "kangaroo", 5) == []
    assert await repository.search_text("acme", "cust-1", "the of and", 5) == []
    # Hostile full-text syntax is searched as words, never parsed.
    assert await repository.search_text("acme", "cust-1", 'invoice" OR NEAR(a b) * -', 5)


async def test_backlog_claims_lease_and_stores_vectors(
    repository: InteractionRepository, clock: FakeClock
) -> None:
    await repository.add(
        "acme",
        [_new(_interaction(f"e-{i}", f"Message number {i} about pricing.")) for i in range(5)],
    )
    assert await repository.backlog_size() == 5
    claimed = await repository.claim_backlog(3, lease=timedelta(minutes=1))
    assert len(claimed) == 3
    # Leased passages are not handed out again until the lease expires.
    others = await repository.claim_backlog(10, lease=timedelta(minutes=1))
    assert {p.passage_id for p in others}.isdisjoint(p.passage_id for p in claimed)
    assert len(others) == 2
    assert await repository.claim_backlog(10, lease=timedelta(minutes=1)) == []
    clock.advance(timedelta(minutes=2))
    expired = await repository.claim_backlog(10, lease=timedelta(minutes=1))
    assert len(expired) == 5
    vectors = [(p.passage_id, _unit(p.passage_id)) for p in expired]
    await repository.store_vectors(vectors)
    assert await repository.backlog_size() == 0
    target = vectors[2]
    hits = await repository.search_vector("acme", "cust-1", target[1], 3)
    assert hits[0].passage_id == target[0]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert await repository.search_vector("acme", "cust-2", target[1], 3) == []
    assert await repository.search_vector("globex", "cust-1", target[1], 3) == []
    # A vector stored after a search is found by the next one (no stale copy of the customer).
    await repository.add("acme", [_new(_interaction("e-late", "A late message."))])
    [late] = await repository.claim_backlog(10, lease=timedelta(minutes=1))
    await repository.store_vectors([(late.passage_id, _unit(999))])
    assert (await repository.search_vector("acme", "cust-1", _unit(999), 1))[0].passage_id == (
        late.passage_id
    )


async def test_erase_removes_every_trace(database: Database, clock: FakeClock) -> None:
    repository_vectors = CustomerVectors()
    repository = InteractionRepository(database=database, clock=clock, vectors=repository_vectors)
    secret = "Zanzibarquux"  # a word no other row contains
    await repository.add(
        "acme",
        [
            _new(_interaction("e-1", f"My name is {secret} and I want a discount.")),
            _new(_interaction("e-2", "Keep this one.", customer="cust-2")),
        ],
    )
    claimed = await repository.claim_backlog(10, lease=timedelta(minutes=1))
    await repository.store_vectors([(p.passage_id, _unit(p.passage_id)) for p in claimed])
    insights = CustomerInsightRepository(database=database, vectors=repository_vectors)
    await insights.add("acme", [_insight("i-1", secret)])
    assert await repository.search_vector("acme", "cust-1", _unit(claimed[0].passage_id), 1)
    erasure_id, counts = await insights.erase("acme", "cust-1", erased_by="svc-gdpr")
    assert (counts.interactions, counts.insights) == (1, 1)
    assert counts.passages >= 1
    assert await repository.search_text("acme", "cust-1", secret, 5) == []
    assert await repository.search_vector("acme", "cust-1", _unit(1), 5) == []
    assert await _rows_containing(database, secret) == []
    assert [s.interaction.customer_id for s in await repository.history("acme", "cust-2")] == [
        "cust-2"
    ]
    records = await insights.erasures("acme")
    assert [r["erasure_id"] for r in records] == [erasure_id]
    assert records[0]["customer_digest"] == customer_digest("acme", "cust-1")
    assert "cust-1" not in str(records)
    # Idempotent: nothing left to erase, still recorded.
    _, again = await insights.erase("acme", "cust-1", erased_by="svc-gdpr")
    assert (again.interactions, again.passages, again.insights) == (0, 0, 0)


async def test_insight_pages_newest_first(database: Database) -> None:
    insights = CustomerInsightRepository(database=database)
    await insights.add("acme", [_insight(f"i-{n}", "x", minutes=n) for n in range(5)])
    await insights.add("globex", [_insight("i-9", "x")])
    first, token = await insights.page("acme", "cust-1", page_size=2)
    second, token2 = await insights.page("acme", "cust-1", page_size=2, page_token=token)
    third, token3 = await insights.page("acme", "cust-1", page_size=2, page_token=token2)
    ids = [i.insight_id for i in [*first, *second, *third]]
    assert ids == ["i-4", "i-3", "i-2", "i-1", "i-0"]
    assert token3 == ""
    risks, _ = await insights.page("acme", "cust-1", kinds=["opportunity"], page_size=10)
    assert risks == []


def _insight(insight_id: str, words: str, *, minutes: int = 0) -> StoredInsight:
    return StoredInsight(
        insight_id=insight_id,
        customer_id="cust-1",
        kind="risk",
        code="churn_intent",
        title=f"Churn risk ({words})",
        description="The customer spoke of cancelling.",
        confidence=0.8,
        evidence=({"interaction_id": "e-1", "quote": words},),
        usage={"degraded": True},
        created_at=_T0 + timedelta(minutes=minutes),
    )


async def _rows_containing(database: Database, needle: str) -> list[str]:
    """Every table (FTS shadow tables included) scanned as text for ``needle``."""
    found: list[str] = []
    async with database.engine.connect() as conn:
        if database.backend == "sqlite":
            names = (
                await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            ).scalars()
        else:
            names = (
                await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
        for name in list(names):
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()
            found += [name for row in rows if row_holds(row, needle)]
    return found


def row_holds(row: Sequence[object], needle: str) -> bool:
    """Whether any column of ``row``, read as text (bytes as UTF-8), contains ``needle``."""
    flat = " ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
    return needle.lower() in flat.lower()


async def test_erase_takes_the_named_runs_that_ended_and_only_those(database: Database) -> None:
    runs = RunRepository(database=database)
    created = {}
    for name, customer in (("ended", "cust-1"), ("running", "cust-1"), ("other", "cust-2")):
        created_run = await runs.create(
            "acme",
            workflow=FOLLOW_UP_WORKFLOW,
            workflow_version="1",
            priority=0,
            request_id=name,
            request_digest=hashlib.sha256(name.encode()).hexdigest(),
            labels={},
            input={"customer_id": customer, "goal": f"words of {name}"},
            timeout_seconds=60,
        )
        created[name] = created_run.run.run_id
    about = await runs.about_customer("acme", FOLLOW_UP_WORKFLOW, "cust-1")
    assert [r.run_id for r in about] == [created["ended"], created["running"]]
    assert await runs.about_customer("globex", FOLLOW_UP_WORKFLOW, "cust-1") == []
    await runs.request_cancel("acme", created["ended"])  # a queued run ends at once
    claimed = await runs.claim("worker-1", lease_seconds=60)  # the oldest queued run
    assert claimed is not None and claimed.run_id == created["running"]
    insights = CustomerInsightRepository(database=database)
    _, counts = await insights.erase(
        "acme", "cust-1", erased_by="svc-gdpr", runs=[created["ended"], created["running"]]
    )
    assert counts.runs == 1
    assert await _rows_containing(database, "words of ended") == []
    # A run still executing is left to its worker; another customer's run is untouched.
    assert (await runs.get("acme", created["running"])).state is RunState.RUNNING
    assert (await runs.get("acme", created["other"])).state is RunState.QUEUED
    assert await runs.events_after("acme", created["running"], 0, 10)
