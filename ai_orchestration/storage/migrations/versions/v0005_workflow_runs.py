"""Workflow runs: the runs and their queue, each run's event log, and the delivery ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_RUN_INDEXES = {
    # ListRuns: newest first within a tenant, optionally of one workflow.
    "ix_workflow_runs_tenant_id_created_at_run_id": ["tenant_id", "created_at", "run_id"],
    "ix_workflow_runs_tenant_id_workflow_created_at_run_id": [
        "tenant_id",
        "workflow",
        "created_at",
        "run_id",
    ],
    # The queue: the best QUEUED run, expired RUNNING leases, RUNNING runs per tenant.
    "ix_workflow_runs_state_priority_created_at": ["state", "priority", "created_at"],
    "ix_workflow_runs_state_lease_expires_at": ["state", "lease_expires_at"],
    "ix_workflow_runs_state_tenant_id": ["state", "tenant_id"],
}


def upgrade() -> None:
    """Create ``workflow_runs``, ``workflow_run_events`` and ``workflow_deliveries``."""
    op.create_table(
        "workflow_runs",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("workflow_version", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("input", _JSON, nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("ended_at", _TIMESTAMP, nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("error", _JSON, nullable=True),
        sa.Column("pending_interrupt", _JSON, nullable=True),
        sa.Column("resume", _JSON, nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=False),
        sa.Column("lease_expires_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_workflow_runs"),
        sa.UniqueConstraint(
            "tenant_id", "request_id", name="uq_workflow_runs_tenant_id_request_id"
        ),
    )
    for name, columns in _RUN_INDEXES.items():
        op.create_index(name, "workflow_runs", columns)
    op.create_table(
        "workflow_run_events",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("event_time", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_workflow_run_events"),
    )
    op.create_table(
        "workflow_deliveries",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", _JSON, nullable=False),
        sa.Column("draft", _JSON, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "idempotency_key", name="pk_workflow_deliveries"),
    )
    op.create_index(
        "ix_workflow_deliveries_tenant_id_run_id", "workflow_deliveries", ["tenant_id", "run_id"]
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_workflow_deliveries_tenant_id_run_id", table_name="workflow_deliveries")
    op.drop_table("workflow_deliveries")
    op.drop_table("workflow_run_events")
    for name in _RUN_INDEXES:
        op.drop_index(name, table_name="workflow_runs")
    op.drop_table("workflow_runs")
