"""Generated insights of customers, and erasing a customer (GDPR)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from typing import Any, Final, cast

from sqlalchemy import CursorResult, and_, delete, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_orchestration.insights import ErasureCounts, StoredInsight
from ai_orchestration.records import TERMINAL_STATES, JsonValue
from ai_orchestration.storage._common import (
    Clock,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._insight_models import (
    AlertModel,
    CustomerErasureModel,
    CustomerInsightModel,
    InteractionModel,
    PassageModel,
)
from ai_orchestration.storage._models import (
    WorkflowDeliveryModel,
    WorkflowRunEventModel,
    WorkflowRunModel,
)
from ai_orchestration.storage._pages import (
    cursor_text,
    cursor_time,
    decode_page_token,
    encode_page_token,
    require_page_size,
)
from ai_orchestration.storage._vector_cache import CustomerVectors

__all__ = ["CustomerInsightRepository", "customer_digest"]

_M = CustomerInsightModel
_SCOPE: Final[str] = "insights"
_IN_CHUNK: Final[int] = 500
"""Run ids per ``IN`` list (well under SQLite's bound on a statement's parameters)."""
_ENDED: Final = sorted(state.value for state in TERMINAL_STATES)


def customer_digest(tenant_id: str, customer_id: str) -> str:
    """What an erasure record keeps of the customer: enough to confirm "was X erased?" when
    asked about X, nothing that names X."""
    return hashlib.sha256(f"{tenant_id}\x00{customer_id}".encode()).hexdigest()


class CustomerInsightRepository:
    """Stores and pages insights; erases every stored trace of a customer."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Clock = utc_now,
        vectors: CustomerVectors | None = None,
    ) -> None:
        """``clock`` stamps erasure records; ``vectors`` is the in-memory vector cache the
        replica's :class:`InteractionRepository` reads through, emptied of an erased customer."""
        self._database = database
        self._clock = clock
        self._vectors = vectors

    async def add(self, tenant_id: str, insights: Sequence[StoredInsight]) -> None:
        """Store ``insights`` in one transaction."""
        require_tenant(tenant_id)
        if not insights:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "insight_id": i.insight_id,
                "customer_id": i.customer_id,
                "kind": i.kind,
                "code": i.code,
                "title": i.title,
                "description": i.description,
                "confidence": i.confidence,
                "evidence": list(i.evidence),
                "usage": i.usage,
                "created_at": require_aware("created_at", i.created_at),
            }
            for i in insights
        ]
        async with self._database.core_transaction() as conn:
            await conn.execute(insert(_M), rows)

    async def page(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        kinds: Sequence[str] = (),
        page_size: int,
        page_token: str = "",
    ) -> tuple[list[StoredInsight], str]:
        """A page of the customer's insights, newest first, and the next page's token."""
        require_tenant(tenant_id)
        require_text("customer_id", customer_id)
        require_page_size(page_size)
        scope = [_SCOPE, tenant_id, customer_id, *sorted(kinds)]
        clauses: list[Any] = [_M.tenant_id == tenant_id, _M.customer_id == customer_id]
        if kinds:
            clauses.append(_M.kind.in_(list(kinds)))
        if page_token:
            after_time, after_id = decode_page_token(
                page_token, scope, lambda c: (cursor_time(c[0]), cursor_text(c[1]))
            )
            clauses.append(
                or_(
                    _M.created_at < after_time,
                    and_(_M.created_at == after_time, _M.insight_id < after_id),
                )
            )
        statement = (
            select(_M)
            .where(*clauses)
            .order_by(_M.created_at.desc(), _M.insight_id.desc())
            .limit(page_size + 1)
        )
        async with self._database.sessionmaker() as session:
            rows = list((await session.execute(statement)).scalars())
        page = [_insight(row) for row in rows[:page_size]]
        token = ""
        if len(rows) > page_size:
            last = page[-1]
            token = encode_page_token(scope, [last.created_at.isoformat(), last.insight_id])
        return page, token

    async def erase(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        erased_by: str,
        cache_entries: int = 0,
        runs: Collection[str] = (),
    ) -> tuple[str, ErasureCounts]:
        """Delete the customer's interactions, passages (full text and vectors with them),
        insights, alerts and the workflow ``runs`` about the customer (each with its events and
        deliveries) in one transaction, and record the erasure; returns its id and the counts.

        ``cache_entries``: LLM cache entries the caller already deleted, for the record.
        ``runs``: ids of the tenant's runs about the customer, ended by the caller (a run that
        has not ended is left alone: its worker still writes to it). Their LangGraph
        checkpoints are the caller's to delete, before this call.
        """
        require_tenant(tenant_id)
        require_text("customer_id", customer_id)
        owned = {"tenant_id": tenant_id, "customer_id": customer_id}
        erasure_id = str(uuid.uuid4())
        async with self._database.core_transaction(immediate=True) as conn:
            counts = ErasureCounts(
                passages=_count(await conn.execute(_delete_of(PassageModel, owned))),
                interactions=_count(await conn.execute(_delete_of(InteractionModel, owned))),
                insights=_count(await conn.execute(_delete_of(_M, owned))),
                alerts=_count(await conn.execute(_delete_of(AlertModel, owned))),
                cache_entries=cache_entries,
                runs=await _delete_runs(conn, tenant_id, runs),
            )
            await conn.execute(
                insert(CustomerErasureModel).values(
                    tenant_id=tenant_id,
                    erasure_id=erasure_id,
                    customer_digest=customer_digest(tenant_id, customer_id),
                    erased_by=erased_by,
                    counts=counts.to_json(),
                    erased_at=require_aware("clock()", self._clock()),
                )
            )
        if self._vectors is not None:
            self._vectors.forget(tenant_id, customer_id)
        if counts.passages and self._database.backend == "sqlite":
            # Deleted FTS5 entries linger in older index segments until they are merged.
            async with self._database.core_transaction(immediate=True) as conn:
                await conn.execute(
                    text(
                        "INSERT INTO insight_passages_fts(insight_passages_fts) VALUES ('optimize')"
                    )
                )
        return erasure_id, counts

    async def erasures(self, tenant_id: str) -> list[dict[str, JsonValue]]:
        """The tenant's erasure records, oldest first (for audits and tests)."""
        require_tenant(tenant_id)
        model = CustomerErasureModel
        statement = select(model).where(model.tenant_id == tenant_id).order_by(model.erased_at)
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [
            {
                "erasure_id": row.erasure_id,
                "customer_digest": row.customer_digest,
                "erased_by": row.erased_by,
                "counts": row.counts,
                "erased_at": row.erased_at.isoformat(),
            }
            for row in rows
        ]


def _delete_of(model: Any, owned: dict[str, str]) -> Any:
    return delete(model).where(
        model.tenant_id == owned["tenant_id"], model.customer_id == owned["customer_id"]
    )


async def _delete_runs(conn: AsyncConnection, tenant_id: str, run_ids: Collection[str]) -> int:
    """Delete the tenant's ended runs among ``run_ids``, with their events and deliveries."""
    deleted = 0
    ids = sorted(set(run_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        gone = (
            (
                await conn.execute(
                    delete(WorkflowRunModel)
                    .where(
                        WorkflowRunModel.tenant_id == tenant_id,
                        WorkflowRunModel.run_id.in_(chunk),
                        WorkflowRunModel.state.in_(_ENDED),
                    )
                    .returning(WorkflowRunModel.run_id)
                )
            )
            .scalars()
            .all()
        )
        if not gone:
            continue
        await conn.execute(
            delete(WorkflowRunEventModel).where(WorkflowRunEventModel.run_id.in_(gone))
        )
        await conn.execute(
            delete(WorkflowDeliveryModel).where(
                WorkflowDeliveryModel.tenant_id == tenant_id,
                WorkflowDeliveryModel.run_id.in_(gone),
            )
        )
        deleted += len(gone)
    return deleted


def _count(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _insight(row: CustomerInsightModel) -> StoredInsight:
    evidence = row.evidence if isinstance(row.evidence, list) else []
    usage = row.usage if isinstance(row.usage, dict) else {}
    return StoredInsight(
        insight_id=row.insight_id,
        customer_id=row.customer_id,
        kind=row.kind,
        code=row.code,
        title=row.title,
        description=row.description,
        confidence=row.confidence,
        evidence=tuple(item for item in evidence if isinstance(item, dict)),
        usage=usage,
        created_at=row.created_at,
    )
