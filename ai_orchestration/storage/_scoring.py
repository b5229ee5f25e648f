"""Lead scoring storage: model versions, the scores given to leads, and what became of the leads.

Three repositories share this module because they share one vocabulary (model versions,
experiment arms, leads) and one pagination scheme:

- :class:`ScoringModelRepository`: trained models, owned by a tenant or global (``"*"``).
- :class:`LeadScoreRepository`: every score handed out, with its inputs for audit and training.
- :class:`LeadOutcomeRepository`: one conversion outcome per lead, the latest report winning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    func,
    null,
    or_,
    select,
    update,
)

from ai_orchestration.errors import ConflictError
from ai_orchestration.records import (
    GLOBAL_OWNER,
    MODEL_STATES,
    JsonValue,
    NewScoringModel,
    OutcomeRecord,
    ScoredOutcome,
    ScoreRecord,
    StoredScoringModel,
)
from ai_orchestration.storage._bulk import BulkInsert
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database, encode_json
from ai_orchestration.storage._models import LeadOutcomeModel, LeadScoreModel, ScoringModelModel
from ai_orchestration.storage._pages import (
    cursor_text,
    cursor_time,
    decode_page_token,
    encode_page_token,
    require_page_size,
)

__all__ = [
    "EncodedScoreRows",
    "LeadOutcomeRepository",
    "LeadScoreRepository",
    "ScoringModelRepository",
    "encode_score_rows",
]

_Model = ScoringModelModel
_Score = LeadScoreModel
_SCORE_TABLE: Final[Table] = cast(Table, LeadScoreModel.__table__)
_Outcome = LeadOutcomeModel


# --------------------------------------------------------------------------------------------
# Scoring models


class ScoringModelRepository:
    """Stores scoring model versions: each tenant's own and the global ones every tenant sees.

    Tenant-facing methods take the tenant first and never change a global model; the global
    models are managed through :meth:`add` with :data:`GLOBAL_OWNER`, :meth:`latest_global` and
    :meth:`set_global_state`.
    """

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies ``created_at`` and ``updated_at``."""
        self._database = database
        self._clock = clock

    async def add(self, owner: str, model: NewScoringModel) -> StoredScoringModel:
        """Store a new model version for ``owner`` (a tenant id or :data:`GLOBAL_OWNER`).

        Raises:
            ConflictError: ``owner`` already has this version (reason ``MODEL_VERSION_EXISTS``).
            ValueError: an empty owner or version, an unknown state, a naive ``trained_at``, or
                features that are not strings.
        """
        require_text("owner", owner)
        require_text("version", model.version)
        _require_state(model.state)
        if not all(isinstance(name, str) and name for name in model.features):
            raise ValueError("features must be non-empty strings")
        now = require_aware("clock()", self._clock())
        stored = StoredScoringModel(
            owner=owner,
            version=model.version,
            state=model.state,
            artifact=bytes(model.artifact),
            metrics=dict(model.metrics),
            features=tuple(model.features),
            trained_at=require_aware("trained_at", model.trained_at),
            reason=model.reason,
            created_at=now,
            updated_at=now,
        )
        values = {field.name: getattr(stored, field.name) for field in dataclasses.fields(stored)}
        values["features"] = list(stored.features)
        statement = (
            dialect_insert(self._database.backend, _Model)
            .values(values)
            .on_conflict_do_nothing(index_elements=[_Model.owner, _Model.version])
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement)
            inserted = cast(CursorResult[Any], result).rowcount > 0
        if not inserted:
            raise ConflictError(
                f"model version {model.version!r} already exists; train under a new version",
                reason="MODEL_VERSION_EXISTS",
                metadata={"version": model.version},
            )
        return stored

    async def get(self, tenant_id: str, version: str) -> StoredScoringModel | None:
        """The model ``version`` as the tenant sees it: its own, else the global one, or ``None``.

        A tenant model shadows a global model of the same version.
        """
        statement = select(_Model).where(
            _Model.owner.in_((_require_tenant(tenant_id), GLOBAL_OWNER)),
            _Model.version == require_text("version", version),
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        # At most two rows: the tenant's own version shadows a global one of the same name.
        own = [row for row in rows if row.owner == tenant_id]
        chosen = own or list(rows)
        return _to_stored_model(chosen[0]) if chosen else None

    async def latest_global(self, *, state: str = "published") -> StoredScoringModel | None:
        """The global model in ``state`` with the newest ``trained_at``, or ``None``."""
        statement = (
            select(_Model)
            .where(_Model.owner == GLOBAL_OWNER, _Model.state == _require_state(state))
            .order_by(_Model.trained_at.desc(), _Model.version.desc())
            .limit(1)
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalars().first()
            return None if row is None else _to_stored_model(row)

    async def list_visible(
        self, tenant_id: str, *, page_size: int, page_token: str = ""
    ) -> tuple[list[StoredScoringModel], str]:
        """One page of the tenant's own and the global models, newest ``trained_at`` first.

        Ties are broken by owner, then version. Pass the returned token back for the next page;
        it is ``""`` after the last page.

        Raises:
            InvalidPageTokenError: ``page_token`` was not issued by this method for this tenant.
            ValueError: an empty tenant or a ``page_size`` below 1.
        """
        scope = ("scoring_models.list_visible", _require_tenant(tenant_id))
        require_page_size(page_size)
        statement = select(_Model).where(_Model.owner.in_((tenant_id, GLOBAL_OWNER)))
        if page_token:
            trained_at, owner, version = decode_page_token(page_token, scope, _model_cursor)
            statement = statement.where(
                or_(
                    _Model.trained_at < trained_at,
                    and_(
                        _Model.trained_at == trained_at,
                        or_(
                            _Model.owner > owner,
                            and_(_Model.owner == owner, _Model.version > version),
                        ),
                    ),
                )
            )
        statement = statement.order_by(
            _Model.trained_at.desc(), _Model.owner, _Model.version
        ).limit(page_size + 1)
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        page = [_to_stored_model(row) for row in rows[:page_size]]
        if len(rows) <= page_size:
            return page, ""
        last = page[-1]
        cursor: list[JsonValue] = [last.trained_at.isoformat(), last.owner, last.version]
        return page, encode_page_token(scope, cursor)

    async def set_state(
        self, tenant_id: str, version: str, state: str, *, reason: str = ""
    ) -> bool:
        """Move the tenant's own model ``version`` to ``state``; global models are never touched.

        Returns:
            Whether the tenant has such a model (``False`` also for a global-only version).
        """
        return await self._set_state(_require_tenant(tenant_id), version, state, reason)

    async def set_global_state(self, version: str, state: str, *, reason: str = "") -> bool:
        """Move the global model ``version`` to ``state``; return whether it exists."""
        return await self._set_state(GLOBAL_OWNER, version, state, reason)

    async def _set_state(self, owner: str, version: str, state: str, reason: str) -> bool:
        statement = (
            update(_Model)
            .where(_Model.owner == owner, _Model.version == require_text("version", version))
            .values(
                state=_require_state(state),
                reason=reason,
                updated_at=require_aware("clock()", self._clock()),
            )
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement)
            return cast(CursorResult[Any], result).rowcount > 0


# --------------------------------------------------------------------------------------------
# Lead scores


class LeadScoreRepository:
    """Appends and reads the scores given to a tenant's leads."""

    def __init__(self, *, database: Database) -> None:
        """Scores carry their own timestamps, so no clock is needed."""
        self._database = database

    async def add_many(self, tenant_id: str, records: Sequence[ScoreRecord]) -> None:
        """Store ``records`` with one multi-row INSERT in one transaction; all or nothing.

        Raises:
            ValueError: an empty id or model version, a grade that is not one character, a naive
                datetime, or a ``score_id`` given twice.
            sqlalchemy.exc.IntegrityError: a ``score_id`` the tenant already stored (nothing of
                the batch is stored then).
        """
        await self.add_encoded(tenant_id, encode_score_rows(tenant_id, records))

    async def add_encoded(self, tenant_id: str, rows: EncodedScoreRows) -> None:
        """:meth:`add_many` for rows already made by :func:`encode_score_rows` (in a worker
        process, typically).

        Raises:
            ValueError: rows of another tenant.
            sqlalchemy.exc.IntegrityError: a ``score_id`` the tenant already stored.
        """
        require_tenant(tenant_id)
        if rows.tenant_id != tenant_id:
            raise ValueError(f"rows of {rows.tenant_id!r} cannot be stored for {tenant_id!r}")
        if not rows.rows:
            return
        async with self._database.core_transaction() as connection:
            await _INSERT_SCORES.execute(connection, rows.rows)

    async def list_for_lead(
        self, tenant_id: str, lead_id: str, *, page_size: int, page_token: str = ""
    ) -> tuple[list[ScoreRecord], str]:
        """One page of the lead's scores, newest ``scored_at`` first (ties: ``score_id`` desc).

        Pass the returned token back for the next page; it is ``""`` after the last page.

        Raises:
            InvalidPageTokenError: ``page_token`` was not issued by this method for this lead.
            ValueError: an empty tenant or lead id, or a ``page_size`` below 1.
        """
        scope = (
            "lead_scores.list_for_lead",
            require_tenant(tenant_id),
            require_text("lead_id", lead_id),
        )
        require_page_size(page_size)
        statement = select(_Score).where(_Score.tenant_id == tenant_id, _Score.lead_id == lead_id)
        if page_token:
            scored_at, score_id = decode_page_token(page_token, scope, _score_cursor)
            statement = statement.where(
                or_(
                    _Score.scored_at < scored_at,
                    and_(_Score.scored_at == scored_at, _Score.score_id < score_id),
                )
            )
        statement = statement.order_by(_Score.scored_at.desc(), _Score.score_id.desc()).limit(
            page_size + 1
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        page = [_to_score_record(row) for row in rows[:page_size]]
        if len(rows) <= page_size:
            return page, ""
        cursor: list[JsonValue] = [page[-1].scored_at.isoformat(), page[-1].score_id]
        return page, encode_page_token(scope, cursor)

    async def latest_features(self, tenant_id: str, lead_id: str) -> dict[str, JsonValue] | None:
        """The inputs of the lead's newest score, or ``None`` when it was never scored."""
        statement = (
            select(_Score.features)
            .where(
                _Score.tenant_id == require_tenant(tenant_id),
                _Score.lead_id == require_text("lead_id", lead_id),
            )
            .order_by(_Score.scored_at.desc(), _Score.score_id.desc())
            .limit(1)
        )
        async with self._database.sessionmaker() as session:
            features = (await session.execute(statement)).scalars().first()
        return None if features is None else dict(features)

    async def arm_counts(self, tenant_id: str) -> dict[tuple[str, str], int]:
        """How many distinct leads were scored under each (model version, experiment arm)."""
        statement = (
            select(
                _Score.model_version,
                _Score.experiment_arm,
                func.count(_Score.lead_id.distinct()),
            )
            .where(_Score.tenant_id == require_tenant(tenant_id))
            .group_by(_Score.model_version, _Score.experiment_arm)
        )
        async with self._database.sessionmaker() as session:
            rows = await session.execute(statement)
            return {(version, arm): count for version, arm, count in rows}

    async def scored_outcomes(self, tenant_id: str, *, limit: int = 200_000) -> list[ScoredOutcome]:
        """Predictions next to what happened, for evaluating models and experiment arms.

        For every lead with an outcome and every (model version, arm) it was scored under: the
        probability of its latest score under that version and arm, with ``converted`` from the
        outcome. Ordered by lead, version and arm; at most ``limit`` entries.

        Raises:
            ValueError: an empty tenant or a ``limit`` below 1.
        """
        require_tenant(tenant_id)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        newest_first = func.row_number().over(
            partition_by=(_Score.lead_id, _Score.model_version, _Score.experiment_arm),
            order_by=(_Score.scored_at.desc(), _Score.score_id.desc()),
        )
        ranked = (
            select(
                _Score.lead_id,
                _Score.model_version,
                _Score.experiment_arm,
                _Score.probability,
                _Outcome.converted,
                newest_first.label("rank"),
            )
            .join(
                _Outcome,
                and_(_Outcome.tenant_id == _Score.tenant_id, _Outcome.lead_id == _Score.lead_id),
            )
            .where(_Score.tenant_id == tenant_id)
            .subquery()
        )
        statement = (
            select(
                ranked.c.lead_id,
                ranked.c.model_version,
                ranked.c.experiment_arm,
                ranked.c.probability,
                ranked.c.converted,
            )
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.lead_id, ranked.c.model_version, ranked.c.experiment_arm)
            .limit(limit)
        )
        async with self._database.sessionmaker() as session:
            rows = await session.execute(statement)
            return [
                ScoredOutcome(
                    lead_id=lead_id,
                    model_version=version,
                    experiment_arm=arm,
                    probability=float(probability),
                    converted=bool(converted),
                )
                for lead_id, version, arm, probability, converted in rows
            ]


# --------------------------------------------------------------------------------------------
# Lead outcomes


class LeadOutcomeRepository:
    """Keeps one outcome per lead of a tenant; recording again replaces it."""

    def __init__(self, *, database: Database) -> None:
        """Outcomes carry their own timestamps, so no clock is needed."""
        self._database = database

    async def record(self, tenant_id: str, outcome: OutcomeRecord) -> OutcomeRecord:
        """Store ``outcome`` as the lead's outcome, replacing any earlier one (last write wins).

        Returns:
            The stored outcome, datetimes in UTC.

        Raises:
            ValueError: an empty tenant, outcome or lead id, or a naive datetime.
        """
        require_tenant(tenant_id)
        stored = dataclasses.replace(
            outcome,
            outcome_id=require_text("outcome_id", outcome.outcome_id),
            lead_id=require_text("lead_id", outcome.lead_id),
            converted=bool(outcome.converted),
            outcome_time=require_aware("outcome_time", outcome.outcome_time),
            recorded_at=require_aware("recorded_at", outcome.recorded_at),
            features=None if outcome.features is None else dict(outcome.features),
        )
        values: dict[str, Any] = {
            "tenant_id": tenant_id,
            "lead_id": stored.lead_id,
            "outcome_id": stored.outcome_id,
            "converted": stored.converted,
            "outcome_time": stored.outcome_time,
            "recorded_at": stored.recorded_at,
            # SQL NULL rather than a JSON null, so "no snapshot" is one thing in the table.
            "features": null() if stored.features is None else stored.features,
        }
        insert_ = dialect_insert(self._database.backend, _Outcome).values(values)
        replaced = [name for name in values if name not in ("tenant_id", "lead_id")]
        upsert = insert_.on_conflict_do_update(
            index_elements=[_Outcome.tenant_id, _Outcome.lead_id],
            set_={name: insert_.excluded[name] for name in replaced},
        )
        async with self._database.transaction() as session:
            await session.execute(upsert)
        return stored

    async def get(self, tenant_id: str, lead_id: str) -> OutcomeRecord | None:
        """The lead's outcome, or ``None`` when none was recorded."""
        statement = select(_Outcome).where(
            _Outcome.tenant_id == require_tenant(tenant_id),
            _Outcome.lead_id == require_text("lead_id", lead_id),
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
            return None if row is None else _to_outcome_record(row)

    async def list_all(self, tenant_id: str, *, limit: int = 1_000_000) -> list[OutcomeRecord]:
        """The tenant's outcomes ordered by ``outcome_time`` then ``lead_id``; at most ``limit``.

        Raises:
            ValueError: an empty tenant or a ``limit`` below 1.
        """
        require_tenant(tenant_id)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        statement = (
            select(_Outcome)
            .where(_Outcome.tenant_id == tenant_id)
            .order_by(_Outcome.outcome_time, _Outcome.lead_id)
            .limit(limit)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
            return [_to_outcome_record(row) for row in rows]

    async def counts(self, tenant_id: str) -> tuple[int, int]:
        """``(leads with an outcome, leads that converted)`` of the tenant."""
        converted: ColumnElement[int] = func.count().filter(_Outcome.converted.is_(True))
        statement = select(func.count(), converted).where(
            _Outcome.tenant_id == require_tenant(tenant_id)
        )
        async with self._database.sessionmaker() as session:
            total, converted_count = (await session.execute(statement)).one()
            return int(total), int(converted_count)


# --------------------------------------------------------------------------------------------
# Helpers


def _require_tenant(tenant_id: str) -> str:
    require_tenant(tenant_id)
    if tenant_id == GLOBAL_OWNER:
        raise ValueError(f"tenant_id cannot be {GLOBAL_OWNER!r}, which marks global models")
    return tenant_id


def _require_state(state: str) -> str:
    if state not in MODEL_STATES:
        raise ValueError(f"state must be one of {', '.join(MODEL_STATES)}; got {state!r}")
    return state


def _model_cursor(cursor: list[JsonValue]) -> tuple[datetime, str, str]:
    trained_at, owner, version = cursor
    return cursor_time(trained_at), cursor_text(owner), cursor_text(version)


def _score_cursor(cursor: list[JsonValue]) -> tuple[datetime, str]:
    scored_at, score_id = cursor
    return cursor_time(scored_at), cursor_text(score_id)


def _to_stored_model(row: ScoringModelModel) -> StoredScoringModel:
    return StoredScoringModel(
        owner=row.owner,
        version=row.version,
        state=row.state,
        artifact=bytes(row.artifact),
        metrics=row.metrics,
        features=tuple(row.features),
        trained_at=row.trained_at,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_INSERT_SCORES: Final[BulkInsert] = BulkInsert(
    _SCORE_TABLE,
    (
        "tenant_id",
        "score_id",
        "lead_id",
        "score",
        "grade",
        "probability",
        "confidence",
        "positive_factors",
        "negative_factors",
        "model_version",
        "experiment_arm",
        "scored_at",
        "expires_at",
        "input_digest",
        "features",
    ),
    repeated=("tenant_id", "model_version", "experiment_arm", "scored_at", "expires_at"),
    encoded=("positive_factors", "negative_factors", "features"),
)


@dataclass(frozen=True, slots=True)
class EncodedScoreRows:
    """Score rows ready for the INSERT, their JSON columns already encoded: what a worker
    process sends back (a JSON string crosses a process boundary at a fraction of the cost of
    the dicts it encodes, and the parent does not encode them again)."""

    tenant_id: str
    rows: list[tuple[Any, ...]]


def encode_score_rows(tenant_id: str, records: Sequence[ScoreRecord]) -> EncodedScoreRows:
    """The checked rows of ``records`` for :data:`_INSERT_SCORES`.

    Raises:
        ValueError: as :meth:`LeadScoreRepository.add_many`.
    """
    require_tenant(tenant_id)
    rows = [_score_row(tenant_id, record) for record in records]
    if len({row[1] for row in rows}) != len(rows):
        raise ValueError("score_id must be unique within a batch")
    return EncodedScoreRows(tenant_id, rows)


def _score_row(tenant_id: str, record: ScoreRecord) -> tuple[Any, ...]:
    """The row of ``record`` in :data:`_INSERT_SCORES` order, JSON columns encoded."""
    if not isinstance(record.grade, str) or len(record.grade) != 1:
        raise ValueError(f"grade must be one character, got {record.grade!r}")
    return (
        tenant_id,
        require_text("score_id", record.score_id),
        require_text("lead_id", record.lead_id),
        record.score,
        record.grade,
        record.probability,
        record.confidence,
        encode_json(record.positive_factors),
        encode_json(record.negative_factors),
        require_text("model_version", record.model_version),
        record.experiment_arm,
        require_aware("scored_at", record.scored_at),
        require_aware("expires_at", record.expires_at),
        record.input_digest,
        encode_json(record.features),
    )


def _to_score_record(row: LeadScoreModel) -> ScoreRecord:
    return ScoreRecord(
        score_id=row.score_id,
        lead_id=row.lead_id,
        score=row.score,
        grade=row.grade,
        probability=row.probability,
        confidence=row.confidence,
        positive_factors=row.positive_factors,
        negative_factors=row.negative_factors,
        model_version=row.model_version,
        experiment_arm=row.experiment_arm,
        scored_at=row.scored_at,
        expires_at=row.expires_at,
        input_digest=row.input_digest,
        features=row.features,
    )


def _to_outcome_record(row: LeadOutcomeModel) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_id=row.outcome_id,
        lead_id=row.lead_id,
        converted=row.converted,
        outcome_time=row.outcome_time,
        recorded_at=row.recorded_at,
        features=row.features,
    )
