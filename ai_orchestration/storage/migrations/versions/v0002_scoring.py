"""Lead scoring: model versions, scores given to leads, and lead outcomes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``scoring_models``, ``lead_scores`` and ``lead_outcomes``."""
    op.create_table(
        "scoring_models",
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("features", _JSON, nullable=False),
        sa.Column("trained_at", _TIMESTAMP, nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner", "version", name="pk_scoring_models"),
    )
    op.create_index("ix_scoring_models_owner_trained_at", "scoring_models", ["owner", "trained_at"])
    op.create_table(
        "lead_scores",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("score_id", sa.String(), nullable=False),
        sa.Column("lead_id", sa.String(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("positive_factors", _JSON, nullable=False),
        sa.Column("negative_factors", _JSON, nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("experiment_arm", sa.String(), nullable=False),
        sa.Column("scored_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.Column("input_digest", sa.String(), nullable=False),
        sa.Column("features", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "score_id", name="pk_lead_scores"),
    )
    op.create_index(
        "ix_lead_scores_tenant_id_lead_id_scored_at_score_id",
        "lead_scores",
        ["tenant_id", "lead_id", "scored_at", "score_id"],
    )
    op.create_table(
        "lead_outcomes",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("lead_id", sa.String(), nullable=False),
        sa.Column("outcome_id", sa.String(), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("outcome_time", _TIMESTAMP, nullable=False),
        sa.Column("recorded_at", _TIMESTAMP, nullable=False),
        sa.Column("features", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "lead_id", name="pk_lead_outcomes"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("lead_outcomes")
    op.drop_index("ix_lead_scores_tenant_id_lead_id_scored_at_score_id", table_name="lead_scores")
    op.drop_table("lead_scores")
    op.drop_index("ix_scoring_models_owner_trained_at", table_name="scoring_models")
    op.drop_table("scoring_models")
