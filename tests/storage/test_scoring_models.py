"""ScoringModelRepository conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ai_orchestration.errors import ConflictError
from ai_orchestration.scoring import GLOBAL_OWNER, MODEL_STATES, NewScoringModel, StoredScoringModel
from ai_orchestration.storage import Database, InvalidPageTokenError, ScoringModelRepository
from ai_orchestration.storage._migrate import alembic_config
from tests.storage._support import FakeClock

A, B = "tenant-a", "tenant-b"
T0 = datetime(2029, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
# ~1 MB, every byte value, so truncation or text decoding would show.
ARTIFACT = bytes(range(256)) * 4096


@pytest.fixture
def repo(database: Database, clock: FakeClock) -> ScoringModelRepository:
    return ScoringModelRepository(database=database, clock=clock)


def _model(
    version: str,
    *,
    hours: int = 0,
    state: str = "published",
    artifact: bytes = b"model",
    reason: str = "",
) -> NewScoringModel:
    return NewScoringModel(
        version=version,
        state=state,
        artifact=artifact,
        metrics={"auc": 0.5 + hours / 100},
        features=("email_domain", "visits"),
        trained_at=T0 + timedelta(hours=hours),
        reason=reason,
    )


def _keys(models: list[StoredScoringModel]) -> list[tuple[str, str]]:
    return [(m.owner, m.version) for m in models]


async def _walk(
    repo: ScoringModelRepository, tenant_id: str, page_size: int
) -> tuple[list[StoredScoringModel], int]:
    """Every page of ``list_visible``; returns the models and how many pages it took."""
    models: list[StoredScoringModel] = []
    token = ""
    pages = 0
    while True:
        page, token = await repo.list_visible(tenant_id, page_size=page_size, page_token=token)
        pages += 1
        assert len(page) <= page_size
        models += page
        if not token:
            return models, pages
        assert pages < 100, "pagination does not terminate"


async def test_add_then_get_round_trips_every_field(
    repo: ScoringModelRepository, clock: FakeClock
) -> None:
    plus_five = timezone(timedelta(hours=5))
    new = NewScoringModel(
        version="tenant-a-20291123-1a2b3c",
        state="candidate",
        artifact=ARTIFACT,
        metrics={"auc": 0.8125, "rows": 12000, "calibration": [0.1, 0.2], "note": None},
        features=("visits", "email_domain", "ünïcødé"),
        trained_at=datetime(2029, 11, 23, 17, 30, 0, 123456, tzinfo=plus_five),
        reason="awaiting review",
    )

    stored = await repo.add(A, new)

    expected = StoredScoringModel(
        owner=A,
        version="tenant-a-20291123-1a2b3c",
        state="candidate",
        artifact=ARTIFACT,
        metrics={"auc": 0.8125, "rows": 12000, "calibration": [0.1, 0.2], "note": None},
        features=("visits", "email_domain", "ünïcødé"),
        trained_at=datetime(2029, 11, 23, 12, 30, 0, 123456, tzinfo=UTC),
        reason="awaiting review",
        created_at=clock(),
        updated_at=clock(),
    )
    assert stored == expected
    fetched = await repo.get(A, "tenant-a-20291123-1a2b3c")
    assert fetched == expected
    assert fetched is not None
    assert fetched.trained_at.tzinfo is UTC
    assert fetched.created_at.tzinfo is UTC
    assert type(fetched.artifact) is bytes
    assert type(fetched.features) is tuple
    assert fetched.is_global is False


async def test_global_models_are_global(repo: ScoringModelRepository) -> None:
    stored = await repo.add(GLOBAL_OWNER, _model("global-1"))

    assert stored.owner == "*"
    assert stored.is_global is True
    assert await repo.get(A, "global-1") == stored
    assert await repo.get(B, "global-1") == stored


async def test_same_version_twice_for_one_owner_conflicts(repo: ScoringModelRepository) -> None:
    first = await repo.add(A, _model("v1", reason="first"))

    with pytest.raises(ConflictError) as caught:
        await repo.add(A, _model("v1", hours=1, reason="second"))

    assert caught.value.reason == "MODEL_VERSION_EXISTS"
    assert caught.value.metadata == {"version": "v1"}
    assert await repo.get(A, "v1") == first
    # Another owner may use the same version name.
    assert (await repo.add(B, _model("v1"))).owner == B
    assert (await repo.add(GLOBAL_OWNER, _model("v1"))).owner == GLOBAL_OWNER
    with pytest.raises(ConflictError):
        await repo.add(GLOBAL_OWNER, _model("v1"))


async def test_get_prefers_the_tenants_own_version(repo: ScoringModelRepository) -> None:
    await repo.add(GLOBAL_OWNER, _model("shared", reason="global"))
    await repo.add(A, _model("shared", reason="a's own"))
    await repo.add(B, _model("b-only"))

    own = await repo.get(A, "shared")
    assert own is not None
    assert (own.owner, own.reason) == (A, "a's own")
    other = await repo.get(B, "shared")
    assert other is not None
    assert (other.owner, other.reason) == (GLOBAL_OWNER, "global")
    assert await repo.get(A, "b-only") is None
    assert await repo.get(A, "missing") is None


async def test_latest_global_is_the_newest_trained_in_the_state(
    repo: ScoringModelRepository,
) -> None:
    assert await repo.latest_global() is None
    await repo.add(GLOBAL_OWNER, _model("g-old", hours=0))
    await repo.add(GLOBAL_OWNER, _model("g-new", hours=2))
    await repo.add(GLOBAL_OWNER, _model("g-candidate", hours=5, state="candidate"))
    await repo.add(GLOBAL_OWNER, _model("g-retired", hours=9, state="retired"))
    # Newer, published, but a tenant's: never the global model.
    await repo.add(A, _model("a-newest", hours=10))

    latest = await repo.latest_global()
    assert latest is not None
    assert (latest.owner, latest.version) == (GLOBAL_OWNER, "g-new")
    candidate = await repo.latest_global(state="candidate")
    assert candidate is not None
    assert candidate.version == "g-candidate"
    assert await repo.latest_global(state="rejected") is None


async def test_list_visible_pages_through_own_and_global_models(
    repo: ScoringModelRepository,
) -> None:
    await repo.add(GLOBAL_OWNER, _model("g-1", hours=1))
    await repo.add(GLOBAL_OWNER, _model("g-3", hours=3))
    await repo.add(GLOBAL_OWNER, _model("g-tie", hours=2))
    await repo.add(A, _model("a-1", hours=1))
    await repo.add(A, _model("a-4", hours=4))
    await repo.add(A, _model("a-tie-y", hours=2))
    await repo.add(A, _model("a-tie-x", hours=2))
    await repo.add(A, _model("a-0", hours=0, state="rejected"))
    await repo.add(B, _model("b-5", hours=5))
    await repo.add(B, _model("b-tie", hours=2))

    expected = [
        (A, "a-4"),
        (GLOBAL_OWNER, "g-3"),
        # Same trained_at: by owner ("*" sorts before "tenant-a"), then version.
        (GLOBAL_OWNER, "g-tie"),
        (A, "a-tie-x"),
        (A, "a-tie-y"),
        (GLOBAL_OWNER, "g-1"),
        (A, "a-1"),
        (A, "a-0"),
    ]
    for page_size in (1, 2, 3, 7, 8, 50):
        models, pages = await _walk(repo, A, page_size)
        assert _keys(models) == expected, page_size
        assert pages == max(1, -(-len(expected) // page_size)), page_size

    first, token = await repo.list_visible(A, page_size=3)
    assert _keys(first) == expected[:3]
    assert token
    second, token = await repo.list_visible(A, page_size=3, page_token=token)
    assert _keys(second) == expected[3:6]
    third, token = await repo.list_visible(A, page_size=3, page_token=token)
    assert _keys(third) == expected[6:]
    assert token == ""

    b_models, _ = await _walk(repo, B, 2)
    assert _keys(b_models) == [
        (B, "b-5"),
        (GLOBAL_OWNER, "g-3"),
        (GLOBAL_OWNER, "g-tie"),
        (B, "b-tie"),
        (GLOBAL_OWNER, "g-1"),
    ]


async def test_list_visible_of_a_tenant_without_models_shows_the_global_ones(
    repo: ScoringModelRepository,
) -> None:
    assert await repo.list_visible(A, page_size=10) == ([], "")
    await repo.add(GLOBAL_OWNER, _model("g-1"))
    page, token = await repo.list_visible(A, page_size=10)
    assert (_keys(page), token) == ([(GLOBAL_OWNER, "g-1")], "")


async def test_list_visible_pagination_survives_inserts_between_pages(
    repo: ScoringModelRepository,
) -> None:
    for hours in range(4):
        await repo.add(A, _model(f"a-{hours}", hours=hours))
    first, token = await repo.list_visible(A, page_size=2)
    assert _keys(first) == [(A, "a-3"), (A, "a-2")]

    # A newer model lands before the cursor; an older one after it.
    await repo.add(A, _model("a-new", hours=10))
    await repo.add(A, _model("a-old", hours=-10))

    rest, token = await repo.list_visible(A, page_size=10, page_token=token)
    assert (_keys(rest), token) == ([(A, "a-1"), (A, "a-0"), (A, "a-old")], "")


def _tokens_derived_from(token: str) -> list[str]:
    """Edited versions of a valid token: flipped characters, a moved cursor, garbage."""
    padded = token + "=" * (-len(token) % 4)
    cursor, seal = json.loads(base64.urlsafe_b64decode(padded))
    moved = [cursor[0], cursor[1], cursor[2] + "x", *cursor[3:]]

    def encode(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    flipped = [
        token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        for i in range(0, len(token), 7)
    ]
    return [
        *flipped,
        token[:-2],
        token + "AAAA",
        encode([moved, seal]),
        encode([cursor, "0" * len(seal)]),
        encode([cursor]),
        encode({"cursor": cursor, "seal": seal}),
        encode("hello"),
        "not base64!",
        "%%%%",
        "e30",  # base64 of {}
    ]


async def test_tampered_page_tokens_are_rejected(repo: ScoringModelRepository) -> None:
    for hours in range(3):
        await repo.add(A, _model(f"a-{hours}", hours=hours))
    _, token = await repo.list_visible(A, page_size=1)
    assert token

    for bad in _tokens_derived_from(token):
        with pytest.raises(InvalidPageTokenError, match="page_token"):
            await repo.list_visible(A, page_size=1, page_token=bad)
    # The genuine token still works.
    page, _ = await repo.list_visible(A, page_size=1, page_token=token)
    assert _keys(page) == [(A, "a-1")]


async def test_a_page_token_of_another_tenant_is_rejected(repo: ScoringModelRepository) -> None:
    for hours in range(3):
        await repo.add(GLOBAL_OWNER, _model(f"g-{hours}", hours=hours))
    _, token_a = await repo.list_visible(A, page_size=1)
    _, token_b = await repo.list_visible(B, page_size=1)
    # The same global rows, so only the tenant binding can tell the tokens apart.
    assert token_a != token_b

    with pytest.raises(InvalidPageTokenError):
        await repo.list_visible(B, page_size=1, page_token=token_a)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_visible(A, page_size=1, page_token=token_b)
    assert issubclass(InvalidPageTokenError, ValueError)


async def test_set_state_changes_only_the_tenants_own_model(
    repo: ScoringModelRepository, clock: FakeClock
) -> None:
    created = clock()
    global_model = await repo.add(GLOBAL_OWNER, _model("shared", state="candidate"))
    global_only = await repo.add(GLOBAL_OWNER, _model("global-only", state="candidate"))
    own = await repo.add(A, _model("shared", state="candidate"))
    other = await repo.add(B, _model("shared", state="candidate"))
    clock.advance(timedelta(minutes=3))

    assert await repo.set_state(A, "shared", "rejected", reason="auc below baseline") is True

    updated = await repo.get(A, "shared")
    assert updated is not None
    assert (updated.owner, updated.state, updated.reason) == (A, "rejected", "auc below baseline")
    assert (updated.created_at, updated.updated_at) == (created, clock())
    assert (updated.artifact, updated.metrics, updated.trained_at) == (
        own.artifact,
        own.metrics,
        own.trained_at,
    )
    assert await repo.get(B, "shared") == other
    assert await repo.get(B, "global-only") == global_only
    page, _ = await repo.list_visible(B, page_size=10)
    assert global_model in page

    # A global-only version cannot be changed through a tenant.
    assert await repo.set_state(A, "global-only", "retired") is False
    assert await repo.get(A, "global-only") == global_only
    assert await repo.set_state(A, "missing", "retired") is False


async def test_set_global_state_changes_only_the_global_model(
    repo: ScoringModelRepository, clock: FakeClock
) -> None:
    await repo.add(GLOBAL_OWNER, _model("shared", state="candidate"))
    own = await repo.add(A, _model("shared", state="candidate"))
    clock.advance(timedelta(hours=1))

    assert await repo.set_global_state("shared", "published", reason="promoted") is True
    assert await repo.set_global_state("missing", "published") is False

    assert await repo.get(A, "shared") == own
    published = await repo.latest_global()
    assert published is not None
    assert (published.version, published.state, published.reason) == (
        "shared",
        "published",
        "promoted",
    )
    assert published.updated_at == clock()
    # Without a reason the old one is cleared.
    assert await repo.set_global_state("shared", "retired") is True
    assert await repo.latest_global() is None
    retired = await repo.latest_global(state="retired")
    assert retired is not None
    assert retired.reason == ""


def test_model_states_are_pinned() -> None:
    assert MODEL_STATES == ("candidate", "published", "retired", "rejected")
    assert GLOBAL_OWNER == "*"


@pytest.mark.parametrize(
    ("owner", "model", "complaint"),
    [
        ("", _model("v1"), "owner"),
        (A, _model(""), "version"),
        (A, _model("v1", state="live"), "state must be one of"),
        (A, NewScoringModel("v1", "candidate", b"", {}, ("ok", ""), T0), "features"),
        (A, NewScoringModel("v1", "candidate", b"", {}, (), datetime(2030, 1, 1)), "timezone"),
    ],
)
async def test_add_rejects_bad_arguments(
    repo: ScoringModelRepository, owner: str, model: NewScoringModel, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        await repo.add(owner, model)
    assert await repo.list_visible(A, page_size=10) == ([], "")


async def test_other_methods_reject_bad_arguments(repo: ScoringModelRepository) -> None:
    await repo.add(A, _model("v1"))
    with pytest.raises(ValueError, match="state must be one of"):
        await repo.set_state(A, "v1", "Published")
    with pytest.raises(ValueError, match="state must be one of"):
        await repo.set_global_state("v1", "")
    with pytest.raises(ValueError, match="state must be one of"):
        await repo.latest_global(state="live")
    with pytest.raises(ValueError, match="page_size"):
        await repo.list_visible(A, page_size=0)
    with pytest.raises(ValueError, match="version"):
        await repo.get(A, "")
    # "*" is the global owner, never a tenant: it cannot reach global models as one.
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: repo.get(GLOBAL_OWNER, "v1"),
        lambda: repo.list_visible(GLOBAL_OWNER, page_size=1),
        lambda: repo.set_state(GLOBAL_OWNER, "v1", "retired"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="tenant_id"):
            await call()
    stored = await repo.get(A, "v1")
    assert stored is not None
    assert stored.state == "published"


async def test_migration_0002_downgrades_and_upgrades_again(database: Database) -> None:
    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    def run(conn: Connection, target: str) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        if target == "0001":
            command.downgrade(config, target)
        else:
            command.upgrade(config, target)

    scoring_tables = {"scoring_models", "lead_scores", "lead_outcomes"}
    async with database.engine.begin() as conn:
        assert scoring_tables <= await conn.run_sync(tables)
        await conn.run_sync(run, "0001")
        assert not scoring_tables & await conn.run_sync(tables)
        await conn.run_sync(run, "head")
        assert scoring_tables <= await conn.run_sync(tables)
