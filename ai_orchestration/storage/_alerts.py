"""The per-tenant alert log and the backlog of interactions the alert rules have not read.

Appending is one transaction that first locks the tenant's log row: sequences are handed out
without gaps in commit order, the cooldown check sees every alert committed before it (no two
replicas can both raise "the first alert of the window"), and the interactions it evaluated
leave the backlog in the same commit, so a crash before the commit leaves them to be evaluated
again and one after it never raises their alerts twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_orchestration.insights import Citation, NewAlert, StoredAlert, StoredInteraction
from ai_orchestration.storage._common import (
    Clock,
    dialect_insert,
    require_tenant,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._insight_models import AlertLogModel, AlertModel, InteractionModel
from ai_orchestration.storage._interactions import stored_interaction

__all__ = ["AlertRepository"]

_A = AlertModel
_L = AlertLogModel
_I = InteractionModel
_IN_CHUNK: Final[int] = 500


class AlertRepository:
    """Every method takes the tenant first (the backlog scan excepted) and filters on it."""

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` stamps alerts and measures cooldowns."""
        self._database = database
        self._clock = clock

    async def pending(
        self,
        limit: int,
        *,
        tenant_id: str | None = None,
        interaction_ids: Sequence[str] = (),
        ingested_before: datetime | None = None,
    ) -> list[tuple[str, StoredInteraction]]:
        """Interactions the rules have not read yet, as (tenant, interaction), oldest first.

        ``interaction_ids`` (with ``tenant_id``) narrows to those; ``ingested_before`` leaves
        out the ones an ingest stream is still evaluating itself.
        """
        clauses: list[Any] = [_I.alerts_pending]
        if tenant_id is not None:
            clauses.append(_I.tenant_id == require_tenant(tenant_id))
        if interaction_ids:
            clauses.append(_I.interaction_id.in_(list(interaction_ids)[:_IN_CHUNK]))
        if ingested_before is not None:
            clauses.append(_I.ingested_at < ingested_before)
        statement = select(_I).where(*clauses).order_by(_I.ingested_at, _I.occur_time).limit(limit)
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [(row.tenant_id, stored_interaction(row)) for row in rows]

    async def commit(
        self,
        tenant_id: str,
        evaluated: Sequence[str],
        alerts: Sequence[NewAlert],
        *,
        cooldown: timedelta,
    ) -> list[StoredAlert]:
        """Append ``alerts`` (those outside their cooldown) and take ``evaluated`` off the
        backlog, in one transaction; the alerts appended, in sequence order.

        Alerts of an interaction another evaluator already took off the backlog are dropped:
        they were appended (or cooled down) by that evaluator.
        """
        require_tenant(tenant_id)
        now = self._clock()
        async with self._database.core_transaction(immediate=True) as conn:
            last = await self._locked_log(conn, tenant_id)
            still = await self._still_pending(conn, tenant_id, evaluated)
            rows: list[dict[str, Any]] = []
            latest: dict[tuple[str, str], datetime | None] = {}
            for alert in alerts:
                if alert.interaction_id not in still:
                    continue
                key = (alert.customer_id, alert.kind)
                if key not in latest:
                    latest[key] = await self._last_raised(conn, tenant_id, *key)
                previous = latest[key]
                if previous is not None and now - previous < cooldown:
                    continue
                latest[key] = now
                last += 1
                rows.append(_alert_row(tenant_id, last, alert, now))
            if rows:
                await conn.execute(insert(_A), rows)
                await conn.execute(
                    update(_L).where(_L.tenant_id == tenant_id).values(last_sequence=last)
                )
            if still:
                await conn.execute(
                    update(_I)
                    .where(_I.tenant_id == tenant_id, _I.interaction_id.in_(sorted(still)))
                    .values(alerts_pending=False)
                )
        return [_stored(row) for row in rows]

    async def append(self, tenant_id: str, alerts: Sequence[NewAlert]) -> list[StoredAlert]:
        """Append alerts raised outside the rules (the LLM budget's), no cooldown applied."""
        require_tenant(tenant_id)
        now = self._clock()
        async with self._database.core_transaction(immediate=True) as conn:
            last = await self._locked_log(conn, tenant_id)
            rows = [_alert_row(tenant_id, last + n, a, now) for n, a in enumerate(alerts, 1)]
            if rows:
                await conn.execute(insert(_A), rows)
                await conn.execute(
                    update(_L)
                    .where(_L.tenant_id == tenant_id)
                    .values(last_sequence=last + len(rows))
                )
        return [_stored(row) for row in rows]

    async def append_once(
        self, tenant_id: str, alert: NewAlert, *, alert_id: str
    ) -> StoredAlert | None:
        """Append ``alert`` as ``alert_id`` unless the tenant's log holds that id already (a
        retried caller's); None when it did. The id is the caller's idempotency key, made an
        id (e.g. a uuid5 of it), so a retry after a crash raises the alert once."""
        require_tenant(tenant_id)
        now = self._clock()
        async with self._database.core_transaction(immediate=True) as conn:
            last = await self._locked_log(conn, tenant_id)  # serialises the tenant's appends
            held = select(_A.alert_id).where(_A.tenant_id == tenant_id, _A.alert_id == alert_id)
            if (await conn.execute(held)).first() is not None:
                return None
            row = {**_alert_row(tenant_id, last + 1, alert, now), "alert_id": alert_id}
            await conn.execute(insert(_A), [row])
            await conn.execute(
                update(_L).where(_L.tenant_id == tenant_id).values(last_sequence=last + 1)
            )
        return _stored(row)

    async def without_run(
        self,
        *,
        raised_after: datetime,
        raised_before: datetime,
        limit: int,
        after_alert: str = "",
    ) -> list[tuple[str, StoredAlert]]:
        """Customers' alerts raised in the window with no follow-up run on them, as (tenant,
        alert), oldest first, ties by alert id (every tenant: the sweep's view).

        ``raised_after`` is inclusive; with ``after_alert`` it is a page's cursor: the alerts
        after (``raised_after``, ``after_alert``), so a sweep pages through the whole window
        however many alerts no tenant wants a run for.
        """
        statement = (
            select(_A)
            .where(
                _A.run_id.is_(None),
                _A.customer_id != "",
                or_(
                    _A.created_at > raised_after,
                    and_(_A.created_at == raised_after, _A.alert_id > after_alert),
                ),
                _A.created_at < raised_before,
            )
            .order_by(_A.created_at, _A.alert_id)
            .limit(limit)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [(row.tenant_id, _model_alert(row)) for row in rows]

    async def read(self, tenant_id: str, *, after: int, limit: int) -> list[StoredAlert]:
        """The tenant's alerts with a sequence above ``after``, in order, at most ``limit``."""
        statement = (
            select(_A)
            .where(_A.tenant_id == require_tenant(tenant_id), _A.sequence > after)
            .order_by(_A.sequence)
            .limit(limit)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [_model_alert(row) for row in rows]

    async def last_sequence(self, tenant_id: str) -> int:
        """The sequence of the tenant's latest alert (0 before the first)."""
        statement = select(_L.last_sequence).where(_L.tenant_id == require_tenant(tenant_id))
        async with self._database.sessionmaker() as session:
            value = (await session.execute(statement)).scalar_one_or_none()
        return int(value or 0)

    async def set_run(self, tenant_id: str, alert_id: str, run_id: str) -> None:
        """Record the follow-up run started for an alert."""
        statement = (
            update(_A)
            .where(_A.tenant_id == require_tenant(tenant_id), _A.alert_id == alert_id)
            .values(run_id=run_id)
        )
        async with self._database.core_transaction() as conn:
            await conn.execute(statement)

    async def _locked_log(self, conn: AsyncConnection, tenant_id: str) -> int:
        create = dialect_insert(self._database.backend, _L).values(
            tenant_id=tenant_id, last_sequence=0
        )
        await conn.execute(create.on_conflict_do_nothing(index_elements=[_L.tenant_id]))
        statement = select(_L.last_sequence).where(_L.tenant_id == tenant_id)
        if self._database.backend == "postgresql":
            statement = statement.with_for_update()
        return int((await conn.execute(statement)).scalar_one())

    async def _still_pending(
        self, conn: AsyncConnection, tenant_id: str, ids: Sequence[str]
    ) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(ids))
        for start in range(0, len(unique), _IN_CHUNK):
            statement = select(_I.interaction_id).where(
                _I.tenant_id == tenant_id,
                _I.interaction_id.in_(unique[start : start + _IN_CHUNK]),
                _I.alerts_pending,
            )
            found.update(row[0] for row in await conn.execute(statement))
        return found

    async def _last_raised(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str, kind: str
    ) -> datetime | None:
        statement = select(func.max(_A.created_at)).where(
            _A.tenant_id == tenant_id, _A.customer_id == customer_id, _A.kind == kind
        )
        value: datetime | None = (await conn.execute(statement)).scalar_one_or_none()
        return value


def _alert_row(tenant_id: str, sequence: int, alert: NewAlert, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "sequence": sequence,
        "alert_id": str(uuid.uuid4()),
        "customer_id": alert.customer_id,
        "kind": alert.kind,
        "severity": int(alert.severity),
        "message": alert.message,
        "evidence": [c.to_json() for c in alert.evidence],
        "interaction_id": alert.interaction_id,
        "run_id": None,
        "created_at": now,
    }


def _stored(row: dict[str, Any]) -> StoredAlert:
    return StoredAlert(
        sequence=row["sequence"],
        alert_id=row["alert_id"],
        customer_id=row["customer_id"],
        kind=row["kind"],
        severity=row["severity"],
        message=row["message"],
        evidence=tuple(_citation(item) for item in row["evidence"]),
        interaction_id=row["interaction_id"],
        run_id=row["run_id"] or "",
        created_at=row["created_at"],
    )


def _model_alert(row: AlertModel) -> StoredAlert:
    evidence = row.evidence if isinstance(row.evidence, list) else []
    return StoredAlert(
        sequence=row.sequence,
        alert_id=row.alert_id,
        customer_id=row.customer_id,
        kind=row.kind,
        severity=row.severity,
        message=row.message,
        evidence=tuple(_citation(item) for item in evidence if isinstance(item, dict)),
        interaction_id=row.interaction_id,
        run_id=row.run_id or "",
        created_at=row.created_at,
    )


def _citation(item: dict[str, Any]) -> Citation:
    return Citation(
        interaction_id=str(item.get("interaction_id", "")),
        quote=str(item.get("quote", "")),
        relevance=float(item.get("relevance", 0.0)),
        start=int(item.get("start", 0)),
        end=int(item.get("end", 0)),
    )
