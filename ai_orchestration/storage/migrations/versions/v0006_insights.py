"""Customer insights: interactions with their signals, passages with full text and vectors,
generated insights and erasure records.

Full text is backend-specific and lives outside the models (see ``_insight_models``): on SQLite
an external-content FTS5 table kept in step with ``insight_passages`` by triggers, so a passage
and its index entry are written in the same transaction by construction; on PostgreSQL a
generated ``tsvector`` column with a GIN index. Vectors are float32 blobs on SQLite (scanned per
customer) and pgvector ``vector(384)`` with an HNSW index on PostgreSQL; creating the
``vector`` extension needs a role allowed to (the embedded and the official images' superuser).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_DIMENSIONS = 384

_SQLITE_FULL_TEXT = [
    # Porter stemming so "renewal" finds "renewing"; diacritics folded ("café" finds "cafe").
    "CREATE VIRTUAL TABLE insight_passages_fts USING fts5(text, content='insight_passages',"
    " content_rowid='passage_id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER insight_passages_fts_insert AFTER INSERT ON insight_passages BEGIN"
    " INSERT INTO insight_passages_fts(rowid, text) VALUES (new.passage_id, new.text); END",
    "CREATE TRIGGER insight_passages_fts_delete AFTER DELETE ON insight_passages BEGIN"
    " INSERT INTO insight_passages_fts(insight_passages_fts, rowid, text)"
    " VALUES ('delete', old.passage_id, old.text); END",
]
_POSTGRES_FULL_TEXT = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    "ALTER TABLE insight_passages ADD COLUMN search_vector tsvector"
    " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX ix_insight_passages_search_vector ON insight_passages USING gin (search_vector)",
    f"ALTER TABLE insight_passages ADD COLUMN embedding vector({_DIMENSIONS})",
    "CREATE INDEX ix_insight_passages_embedding ON insight_passages"
    " USING hnsw (embedding vector_cosine_ops)",
]


def upgrade() -> None:
    """Create the insight tables, then the backend's full-text and vector parts."""
    op.create_table(
        "insight_interactions",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("interaction_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("occur_time", _TIMESTAMP, nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("participants", _JSON, nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("signals", _JSON, nullable=False),
        sa.Column("ingested_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "interaction_id", name="pk_insight_interactions"),
    )
    op.create_index(
        "ix_insight_interactions_tenant_customer_occur_time",
        "insight_interactions",
        ["tenant_id", "customer_id", "occur_time"],
    )
    op.create_table(
        "insight_passages",
        sa.Column("passage_id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("interaction_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("occur_time", _TIMESTAMP, nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("embedded", sa.Boolean(), nullable=False),
        sa.Column("embed_lease_until", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("passage_id", name="pk_insight_passages"),
        sa.UniqueConstraint(
            "tenant_id",
            "interaction_id",
            "position",
            name="uq_insight_passages_tenant_id_interaction_id_position",
        ),
    )
    op.create_index(
        "ix_insight_passages_customer_embedded",
        "insight_passages",
        ["tenant_id", "customer_id", "embedded", "passage_id"],
    )
    # The embedding backlog: only passages still waiting are in this index.
    op.create_index(
        "ix_insight_passages_backlog",
        "insight_passages",
        ["passage_id"],
        sqlite_where=sa.text("NOT embedded"),
        postgresql_where=sa.text("NOT embedded"),
    )
    if op.get_context().dialect.name == "sqlite":
        op.add_column("insight_passages", sa.Column("embedding", sa.LargeBinary(), nullable=True))
        for statement in _SQLITE_FULL_TEXT:
            op.execute(statement)
    else:
        for statement in _POSTGRES_FULL_TEXT:
            op.execute(statement)
    op.create_table(
        "customer_insights",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("insight_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("evidence", _JSON, nullable=False),
        sa.Column("usage", _JSON, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "insight_id", name="pk_customer_insights"),
    )
    op.create_index(
        "ix_customer_insights_tenant_id_customer_id_created_at",
        "customer_insights",
        ["tenant_id", "customer_id", "created_at", "insight_id"],
    )
    op.create_table(
        "customer_erasures",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("erasure_id", sa.String(), nullable=False),
        sa.Column("customer_digest", sa.String(64), nullable=False),
        sa.Column("erased_by", sa.String(), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("erased_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "erasure_id", name="pk_customer_erasures"),
    )


def downgrade() -> None:
    """Drop the insight tables (and the SQLite full-text table with its triggers)."""
    op.drop_table("customer_erasures")
    op.drop_table("customer_insights")
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TABLE insight_passages_fts")
    op.drop_table("insight_passages")
    op.drop_table("insight_interactions")
