"""Alerts: the per-tenant alert log and its sequence, and the interactions awaiting evaluation.

Interactions stored before this revision are not evaluated (``alerts_pending`` false): alerts are
about what arrives from now on, not a replay of history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the alert log, its per-tenant sequence, and the evaluation backlog flag."""
    with op.batch_alter_table("insight_interactions") as batch:
        batch.add_column(
            sa.Column("alerts_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_insight_interactions_alerts_pending",
        "insight_interactions",
        ["tenant_id", "ingested_at"],
        sqlite_where=sa.text("alerts_pending"),
        postgresql_where=sa.text("alerts_pending"),
    )
    op.create_table(
        "insight_alert_logs",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_insight_alert_logs"),
    )
    op.create_table(
        "insight_alerts",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("evidence", _JSON, nullable=False),
        sa.Column("interaction_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sequence", name="pk_insight_alerts"),
        sa.UniqueConstraint("tenant_id", "alert_id", name="uq_insight_alerts_tenant_id_alert_id"),
    )
    op.create_index(
        "ix_insight_alerts_cooldown",
        "insight_alerts",
        ["tenant_id", "customer_id", "kind", "created_at"],
    )


def downgrade() -> None:
    """Drop the alert tables and the backlog flag."""
    op.drop_table("insight_alerts")
    op.drop_table("insight_alert_logs")
    op.drop_index("ix_insight_interactions_alerts_pending", table_name="insight_interactions")
    with op.batch_alter_table("insight_interactions") as batch:
        batch.drop_column("alerts_pending")
