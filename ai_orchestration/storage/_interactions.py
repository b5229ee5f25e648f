"""Interactions, their passages, full text and vectors (``InsightService``'s store).

One :meth:`InteractionRepository.add` is one transaction: the interactions of a batch, their
signals, passages and full-text entries commit together or not at all, so an interaction the
caller is told was ingested is findable by full text at once. Vectors come later, from the
embedding backlog (:meth:`~InteractionRepository.claim_backlog`), which is the set of passages
with ``embedded`` false: durable by construction, shared by every replica through a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_orchestration.insights import (
    Direction,
    IngestOutcome,
    Interaction,
    InteractionKind,
    NewInteraction,
    Passage,
    PendingPassage,
    Signals,
    StoredInteraction,
    cosine_top_k,
    decode_vectors,
    encode_vector,
    fts5_query,
    pg_tsquery,
)
from ai_orchestration.storage._common import Clock, require_tenant, require_text, utc_now
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._insight_models import InteractionModel, PassageModel
from ai_orchestration.storage._vector_cache import CustomerVectors

__all__ = ["InteractionRepository", "RetrievalHit", "stored_interaction"]

_I = InteractionModel
_P = PassageModel
_IN_CHUNK: Final[int] = 500
"""Ids per ``IN (...)`` list: far below SQLite's 32,766 bound parameters."""


_STAMP = text(
    "SELECT count(*), max(passage_id) FROM insight_passages"
    " WHERE tenant_id = :tenant AND customer_id = :customer AND embedded"
)
_VECTORS = text(
    "SELECT passage_id, embedding FROM insight_passages"
    " WHERE tenant_id = :tenant AND customer_id = :customer AND embedded ORDER BY passage_id"
)


@dataclass(frozen=True, slots=True)
class RetrievalHit:
    """A passage id found by one retriever, with that retriever's own score."""

    passage_id: int
    score: float


class InteractionRepository:
    """Every method takes the tenant first and filters on it; vectors are 384 float32 values."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Clock = utc_now,
        vectors: CustomerVectors | None = None,
    ) -> None:
        """``clock`` supplies ``ingested_at`` and lease times; ``vectors`` keeps customers'
        vectors in memory between questions (SQLite; a fresh cache by default)."""
        self._database = database
        self._clock = clock
        self._vectors = vectors if vectors is not None else CustomerVectors()

    # ------------------------------------------------------------------ writing

    async def add(self, tenant_id: str, items: Sequence[NewInteraction]) -> list[IngestOutcome]:
        """Store ``items`` in one transaction; the outcome of each, in order.

        An id already stored (or earlier in ``items``) with the same digest is a duplicate, with
        another digest a conflict; neither writes anything.
        """
        require_tenant(tenant_id)
        outcomes: list[IngestOutcome | None] = [None] * len(items)
        async with self._database.core_transaction(immediate=True) as conn:
            stored = await self._digests(
                conn, tenant_id, [i.interaction.interaction_id for i in items]
            )
            fresh: list[NewInteraction] = []
            for position, item in enumerate(items):
                key = item.interaction.interaction_id
                known = stored.get(key)
                if known is None:
                    stored[key] = item.digest
                    fresh.append(item)
                    outcomes[position] = IngestOutcome.INGESTED
                elif known == item.digest:
                    outcomes[position] = IngestOutcome.DUPLICATE
                else:
                    outcomes[position] = IngestOutcome.CONFLICT
            if fresh:
                now = self._clock()
                await conn.execute(insert(_I), [_row(tenant_id, i, now) for i in fresh])
                passages = [p for item in fresh for p in _passage_rows(tenant_id, item)]
                if passages:
                    await conn.execute(insert(_P), passages)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _digests(
        self, conn: AsyncConnection, tenant_id: str, ids: Sequence[str]
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _IN_CHUNK):
            statement = select(_I.interaction_id, _I.content_digest).where(
                _I.tenant_id == tenant_id, _I.interaction_id.in_(unique[start : start + _IN_CHUNK])
            )
            found.update({row[0]: row[1] for row in await conn.execute(statement)})
        return found

    # ------------------------------------------------------------------ embedding backlog

    async def claim_backlog(self, limit: int, *, lease: timedelta) -> list[PendingPassage]:
        """Up to ``limit`` passages without a vector, leased for ``lease`` to this caller.

        A worker that dies leaves its lease to expire; another worker then claims the passages.
        Claims come oldest first across tenants (one backlog for the whole service).
        """
        now = self._clock()
        waiting = (
            select(_P.passage_id)
            .where(
                ~_P.embedded,
                or_(_P.embed_lease_until.is_(None), _P.embed_lease_until < now),
            )
            .order_by(_P.passage_id)
            .limit(limit)
        )
        if self._database.backend == "postgresql":
            waiting = waiting.with_for_update(skip_locked=True)
        statement = (
            update(_P)
            .where(_P.passage_id.in_(waiting.scalar_subquery()))
            .values(embed_lease_until=now + lease)
            .returning(_P.passage_id, _P.text)
        )
        async with self._database.core_transaction(immediate=True) as conn:
            rows = (await conn.execute(statement)).all()
        return sorted((PendingPassage(row[0], row[1]) for row in rows), key=lambda p: p.passage_id)

    async def store_vectors(self, vectors: Sequence[tuple[int, np.ndarray]]) -> None:
        """Save each passage's vector and take it off the backlog.

        A passage erased meanwhile is simply not updated.
        """
        if not vectors:
            return
        if self._database.backend == "postgresql":
            statement = text(
                "UPDATE insight_passages SET embedding = CAST(:vector AS vector),"
                " embedded = true, embed_lease_until = NULL WHERE passage_id = :id"
            )
            params = [{"id": pid, "vector": _pg_vector(v)} for pid, v in vectors]
        else:
            statement = text(
                "UPDATE insight_passages SET embedding = :vector, embedded = 1,"
                " embed_lease_until = NULL WHERE passage_id = :id"
            )
            params = [{"id": pid, "vector": encode_vector(v)} for pid, v in vectors]
        async with self._database.core_transaction() as conn:
            await conn.execute(statement, params)

    async def backlog_size(self) -> int:
        """Passages still waiting for a vector, across tenants (the backlog metric)."""
        statement = select(func.count()).select_from(_P).where(~_P.embedded)
        async with self._database.core_transaction() as conn:
            return int((await conn.execute(statement)).scalar_one())

    # ------------------------------------------------------------------ retrieval

    async def search_text(
        self, tenant_id: str, customer_id: str, question: str, limit: int
    ) -> list[RetrievalHit]:
        """Passages of the customer matching ``question``'s words, best first (BM25 / ts_rank)."""
        require_tenant(tenant_id)
        if self._database.backend == "postgresql":
            query = pg_tsquery(question)
            if query is None:
                return []
            statement = text(
                "SELECT passage_id, ts_rank_cd(search_vector, q) AS rank"
                " FROM insight_passages, to_tsquery('english', :query) AS q"
                " WHERE tenant_id = :tenant AND customer_id = :customer AND search_vector @@ q"
                " ORDER BY rank DESC, passage_id LIMIT :limit"
            )
        else:
            query = fts5_query(question)
            if query is None:
                return []
            # bm25() is lower for better matches; negated so that higher is better everywhere.
            statement = text(
                "SELECT p.passage_id, -bm25(insight_passages_fts) AS rank"
                " FROM insight_passages_fts JOIN insight_passages AS p"
                " ON p.passage_id = insight_passages_fts.rowid"
                " WHERE insight_passages_fts MATCH :query"
                " AND p.tenant_id = :tenant AND p.customer_id = :customer"
                " ORDER BY rank DESC, p.passage_id LIMIT :limit"
            )
        params = {"query": query, "tenant": tenant_id, "customer": customer_id, "limit": limit}
        async with self._database.core_transaction() as conn:
            rows = (await conn.execute(statement, params)).all()
        return [RetrievalHit(int(row[0]), float(row[1])) for row in rows]

    async def customer_vectors(
        self, tenant_id: str, customer_id: str
    ) -> tuple[list[int], np.ndarray]:
        """Every embedded passage id of the customer and their vectors as one matrix (SQLite;
        on PostgreSQL use :meth:`search_vector`, which never moves vectors out)."""
        require_tenant(tenant_id)
        params = {"tenant": tenant_id, "customer": customer_id}
        async with self._database.core_transaction() as conn:
            count, newest = (await conn.execute(_STAMP, params)).one()
            stamp = (int(count), int(newest or 0))
            cached = self._vectors.get(tenant_id, customer_id, stamp)
            if cached is not None:
                return cached
            rows = (await conn.execute(_VECTORS, params)).all()
        ids, matrix = [int(row[0]) for row in rows], decode_vectors([row[1] for row in rows])
        if len(ids) == stamp[0]:  # else a vector arrived between the two reads: next time
            self._vectors.put(tenant_id, customer_id, stamp, ids, matrix)
        return ids, matrix

    async def search_vector(
        self, tenant_id: str, customer_id: str, vector: np.ndarray, limit: int
    ) -> list[RetrievalHit]:
        """Passages of the customer nearest to ``vector`` by cosine, best first.

        SQLite: an exact scan of the customer's vectors in numpy. PostgreSQL: the HNSW index,
        scanned iteratively so that filtering by customer still yields ``limit`` passages when
        the customer has that many.
        """
        require_tenant(tenant_id)
        if self._database.backend == "sqlite":
            ids, matrix = await self.customer_vectors(tenant_id, customer_id)
            return [RetrievalHit(i, s) for i, s in cosine_top_k(vector, matrix, ids, limit)]
        statement = text(
            "SELECT passage_id, 1 - (embedding <=> CAST(:vector AS vector)) AS similarity"
            " FROM insight_passages WHERE tenant_id = :tenant AND customer_id = :customer"
            " AND embedded ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :limit"
        )
        params = {
            "vector": _pg_vector(vector),
            "tenant": tenant_id,
            "customer": customer_id,
            "limit": limit,
        }
        async with self._database.core_transaction() as conn:
            await conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = (await conn.execute(statement, params)).all()
        return [RetrievalHit(int(row[0]), float(row[1])) for row in rows]

    async def passages(self, tenant_id: str, passage_ids: Sequence[int]) -> list[Passage]:
        """The passages with these ids that belong to the tenant, in the order asked."""
        require_tenant(tenant_id)
        found: dict[int, Passage] = {}
        ids = list(dict.fromkeys(passage_ids))
        async with self._database.core_transaction() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                statement = select(
                    _P.passage_id,
                    _P.interaction_id,
                    _P.occur_time,
                    _P.start_offset,
                    _P.end_offset,
                    _P.text,
                ).where(
                    _P.tenant_id == tenant_id, _P.passage_id.in_(ids[start : start + _IN_CHUNK])
                )
                for row in await conn.execute(statement):
                    found[row[0]] = Passage(
                        passage_id=row[0],
                        interaction_id=row[1],
                        occur_time=row[2],
                        start=row[3],
                        end=row[4],
                        text=row[5],
                    )
        return [found[pid] for pid in ids if pid in found]

    # ------------------------------------------------------------------ history

    async def history(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        since: datetime | None = None,
        latest: int | None = None,
    ) -> list[StoredInteraction]:
        """The customer's interactions with their signals, oldest first; only the ``latest``
        ones when given."""
        require_tenant(tenant_id)
        require_text("customer_id", customer_id)
        clauses = [_I.tenant_id == tenant_id, _I.customer_id == customer_id]
        if since is not None:
            clauses.append(_I.occur_time >= since)
        statement = select(_I).where(and_(*clauses))
        if latest is None:
            statement = statement.order_by(_I.occur_time, _I.interaction_id)
        else:
            statement = statement.order_by(_I.occur_time.desc(), _I.interaction_id.desc())
            statement = statement.limit(latest)
        async with self._database.sessionmaker() as session:
            rows = list((await session.execute(statement)).scalars().all())
        if latest is not None:
            rows.reverse()
        return [stored_interaction(row) for row in rows]


def _row(tenant_id: str, item: NewInteraction, now: datetime) -> dict[str, Any]:
    interaction = item.interaction
    return {
        "tenant_id": tenant_id,
        "interaction_id": interaction.interaction_id,
        "customer_id": interaction.customer_id,
        "kind": interaction.kind.value,
        "direction": interaction.direction.value,
        "occur_time": interaction.occur_time,
        "subject": interaction.subject,
        "body": interaction.body,
        "participants": list(interaction.participants),
        "content_digest": item.digest,
        "signals": item.signals.to_json(),
        "ingested_at": now,
        "alerts_pending": True,
    }


def _passage_rows(tenant_id: str, item: NewInteraction) -> list[dict[str, Any]]:
    interaction = item.interaction
    return [
        {
            "tenant_id": tenant_id,
            "customer_id": interaction.customer_id,
            "interaction_id": interaction.interaction_id,
            "position": chunk.index,
            "start_offset": chunk.start,
            "end_offset": chunk.end,
            "occur_time": interaction.occur_time,
            "text": chunk.text,
            "embedded": False,
            "embed_lease_until": None,
        }
        for chunk in item.chunks
    ]


def stored_interaction(row: InteractionModel) -> StoredInteraction:
    """The domain's record of a stored row."""
    participants = row.participants if isinstance(row.participants, list) else []
    signals = row.signals if isinstance(row.signals, dict) else {}
    interaction = Interaction(
        interaction_id=row.interaction_id,
        customer_id=row.customer_id,
        kind=InteractionKind(row.kind),
        direction=Direction(row.direction),
        occur_time=row.occur_time,
        subject=row.subject,
        body=row.body,
        participants=tuple(str(p) for p in participants),
    )
    return StoredInteraction(interaction, Signals.from_json(signals), row.ingested_at)


def _pg_vector(vector: np.ndarray) -> str:
    # pgvector's text form; asyncpg has no codec for the type, so it travels as text.
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"
