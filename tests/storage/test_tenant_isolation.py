"""Tenant isolation: what one tenant writes, no repository method shows or changes for another."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ai_orchestration.scoring import (
    GLOBAL_OWNER,
    NewScoringModel,
    OutcomeRecord,
    ScoredOutcome,
    ScoreRecord,
)
from ai_orchestration.storage import (
    Database,
    IdempotencyRepository,
    InvalidPageTokenError,
    LeadOutcomeRepository,
    LeadScoreRepository,
    ScoringModelRepository,
    TenantSettingsRepository,
    compute_request_digest,
)
from tests.storage._support import FakeClock

A, B = "tenant-a", "tenant-b"
METHOD = "/crm.ai.v1.InsightService/IngestInteractions"
T0 = datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC)
# Methods that do not act for one tenant, by class:
CROSS_TENANT_METHODS: dict[type, set[str]] = {
    # Housekeeping deletes by expiry across tenants and returns only a count.
    IdempotencyRepository: {"purge_expired"},
    TenantSettingsRepository: set(),
    # Models are stored per owner (a tenant or GLOBAL_OWNER); global ones are managed apart.
    ScoringModelRepository: {"add", "latest_global", "set_global_state"},
    LeadScoreRepository: set(),
    LeadOutcomeRepository: set(),
}


def _public_methods(cls: type) -> list[tuple[str, Callable[..., Any]]]:
    return [
        (name, member)
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    ]


@pytest.mark.parametrize("cls", list(CROSS_TENANT_METHODS))
def test_every_method_takes_the_tenant_first_and_requires_it(cls: type) -> None:
    methods = [(n, m) for n, m in _public_methods(cls) if n not in CROSS_TENANT_METHODS[cls]]
    assert methods
    for name, method in methods:
        first = list(inspect.signature(method).parameters.values())[1]
        assert (name, first.name, first.default) == (name, "tenant_id", inspect.Parameter.empty)


async def test_idempotency_records_are_per_tenant(database: Database, clock: FakeClock) -> None:
    repo = IdempotencyRepository(database=database, clock=clock)
    expires_at = clock() + timedelta(hours=1)
    digest_a = compute_request_digest(b"a's request")
    digest_b = compute_request_digest(b"b's request")

    record_a = await repo.put(
        A, METHOD, "req-1", request_digest=digest_a, response=b"a", expires_at=expires_at
    )
    assert await repo.get(B, METHOD, "req-1") is None

    # Same request_id, different body, other tenant: a separate record, not a conflict.
    record_b = await repo.put(
        B, METHOD, "req-1", request_digest=digest_b, response=b"b", expires_at=expires_at
    )
    assert (record_b.tenant_id, record_b.response) == (B, b"b")
    assert await repo.get(A, METHOD, "req-1") == record_a
    assert await repo.get(B, METHOD, "req-1") == record_b


async def test_settings_are_per_tenant(database: Database, clock: FakeClock) -> None:
    repo = TenantSettingsRepository(database=database, clock=clock)
    await repo.set(A, "llm.model", "local")
    await repo.set(A, "only-a", True)

    assert await repo.get(B, "llm.model") is None
    assert await repo.list(B) == {}
    assert await repo.delete(B, "llm.model") is False

    await repo.set(B, "llm.model", "remote")
    assert await repo.get(A, "llm.model") == "local"
    assert await repo.get(B, "llm.model") == "remote"
    assert await repo.list(A) == {"llm.model": "local", "only-a": True}
    assert await repo.list(B) == {"llm.model": "remote"}

    assert await repo.delete(B, "llm.model") is True
    assert await repo.get(A, "llm.model") == "local"


def test_the_cross_tenant_model_methods_name_no_tenant() -> None:
    parameters = {
        name: list(inspect.signature(method).parameters)[1:]
        for name, method in _public_methods(ScoringModelRepository)
    }
    assert parameters["add"] == ["owner", "model"]
    assert parameters["latest_global"] == ["state"]
    assert parameters["set_global_state"] == ["version", "state", "reason"]


def _model(version: str, hours: int = 0) -> NewScoringModel:
    return NewScoringModel(
        version=version,
        state="published",
        artifact=version.encode(),
        metrics={},
        features=("visits",),
        trained_at=T0 + timedelta(hours=hours),
    )


def _score(score_id: str, lead_id: str, *, seconds: int = 0, arm: str = "control") -> ScoreRecord:
    return ScoreRecord(
        score_id=score_id,
        lead_id=lead_id,
        score=50,
        grade="C",
        probability=0.5 + seconds / 100,
        confidence=0.5,
        positive_factors=[],
        negative_factors=[],
        model_version="v1",
        experiment_arm=arm,
        scored_at=T0 + timedelta(seconds=seconds),
        expires_at=T0 + timedelta(days=1),
        input_digest="",
        features={"score_id": score_id},
    )


def _outcome(lead_id: str, converted: bool) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_id=f"o-{lead_id}",
        lead_id=lead_id,
        converted=converted,
        outcome_time=T0,
        recorded_at=T0,
        features=None,
    )


async def test_scoring_models_are_per_tenant(database: Database, clock: FakeClock) -> None:
    repo = ScoringModelRepository(database=database, clock=clock)
    shared = await repo.add(GLOBAL_OWNER, _model("shared", hours=0))
    model_a = await repo.add(A, _model("v1", hours=1))
    await repo.add(A, _model("a-only", hours=2))

    assert await repo.get(B, "v1") is None
    assert await repo.get(B, "a-only") is None
    assert await repo.list_visible(B, page_size=10) == ([shared], "")
    assert await repo.set_state(B, "v1", "rejected") is False
    assert await repo.set_state(B, "shared", "rejected") is False

    # The same version for another tenant: its own model, not a conflict.
    model_b = await repo.add(B, _model("v1", hours=3))
    assert await repo.get(A, "v1") == model_a
    assert await repo.get(B, "v1") == model_b
    assert await repo.set_state(B, "v1", "retired") is True
    assert await repo.get(A, "v1") == model_a
    assert await repo.get(A, "shared") == shared
    page, _ = await repo.list_visible(A, page_size=10)
    assert [(m.owner, m.version) for m in page] == [
        (A, "a-only"),
        (A, "v1"),
        (GLOBAL_OWNER, "shared"),
    ]
    _, token_a = await repo.list_visible(A, page_size=1)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_visible(B, page_size=1, page_token=token_a)


async def test_lead_scores_are_per_tenant(database: Database) -> None:
    repo = LeadScoreRepository(database=database)
    outcomes = LeadOutcomeRepository(database=database)
    await repo.add_many(A, [_score("s-1", "lead-1"), _score("s-2", "lead-1", seconds=5)])

    assert await repo.list_for_lead(B, "lead-1", page_size=10) == ([], "")
    assert await repo.latest_features(B, "lead-1") is None
    assert await repo.arm_counts(B) == {}
    await outcomes.record(B, _outcome("lead-1", converted=True))
    assert await repo.scored_outcomes(B) == []
    assert await repo.scored_outcomes(A) == []

    # Same score and lead ids in another tenant: separate rows, no key collision.
    await repo.add_many(B, [_score("s-1", "lead-1", seconds=9, arm="treatment")])
    page_a, _ = await repo.list_for_lead(A, "lead-1", page_size=10)
    assert [r.score_id for r in page_a] == ["s-2", "s-1"]
    page_b, _ = await repo.list_for_lead(B, "lead-1", page_size=10)
    assert [(r.score_id, r.experiment_arm) for r in page_b] == [("s-1", "treatment")]
    assert await repo.latest_features(A, "lead-1") == {"score_id": "s-2"}
    assert await repo.arm_counts(A) == {("v1", "control"): 1}
    assert await repo.arm_counts(B) == {("v1", "treatment"): 1}
    assert await repo.scored_outcomes(B) == [ScoredOutcome("lead-1", "v1", "treatment", 0.59, True)]
    assert await repo.scored_outcomes(A) == []
    _, token_a = await repo.list_for_lead(A, "lead-1", page_size=1)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_for_lead(B, "lead-1", page_size=1, page_token=token_a)


async def test_lead_outcomes_are_per_tenant(database: Database) -> None:
    repo = LeadOutcomeRepository(database=database)
    outcome_a = await repo.record(A, _outcome("lead-1", converted=True))

    assert await repo.get(B, "lead-1") is None
    assert await repo.list_all(B) == []
    assert await repo.counts(B) == (0, 0)

    # Recording the same lead for B must not replace A's outcome.
    outcome_b = await repo.record(B, _outcome("lead-1", converted=False))
    assert await repo.get(A, "lead-1") == outcome_a
    assert await repo.get(B, "lead-1") == outcome_b
    assert await repo.list_all(A) == [outcome_a]
    assert await repo.counts(A) == (1, 1)
    assert await repo.counts(B) == (1, 0)


_REPOSITORIES: dict[str, Callable[[Database], Any]] = {
    "idempotency": lambda db: IdempotencyRepository(database=db),
    "settings": lambda db: TenantSettingsRepository(database=db),
    "models": lambda db: ScoringModelRepository(database=db),
    "scores": lambda db: LeadScoreRepository(database=db),
    "outcomes": lambda db: LeadOutcomeRepository(database=db),
}


@pytest.mark.parametrize(
    ("repository", "method", "arguments"),
    [
        ("idempotency", "get", (METHOD, "req-1")),
        ("settings", "get", ("k",)),
        ("settings", "set", ("k", 1)),
        ("settings", "list", ()),
        ("settings", "delete", ("k",)),
        ("models", "get", ("v1",)),
        ("models", "list_visible", ()),
        ("models", "set_state", ("v1", "retired")),
        ("scores", "add_many", ([_score("s-1", "lead-1")],)),
        ("scores", "add_many", ([],)),
        ("scores", "list_for_lead", ("lead-1",)),
        ("scores", "latest_features", ("lead-1",)),
        ("scores", "arm_counts", ()),
        ("scores", "scored_outcomes", ()),
        ("outcomes", "record", (_outcome("lead-1", converted=True),)),
        ("outcomes", "get", ("lead-1",)),
        ("outcomes", "list_all", ()),
        ("outcomes", "counts", ()),
    ],
)
async def test_blank_tenant_is_refused(
    database: Database, repository: str, method: str, arguments: tuple[Any, ...]
) -> None:
    repo = _REPOSITORIES[repository](database)
    keywords = {"page_size": 10} if method in ("list_visible", "list_for_lead") else {}
    with pytest.raises(ValueError, match="tenant_id"):
        await getattr(repo, method)("", *arguments, **keywords)
