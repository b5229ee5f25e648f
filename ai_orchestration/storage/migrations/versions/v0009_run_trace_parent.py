"""Runs: the W3C ``traceparent`` of the call that started the run, so that every execution of the
run, on whichever replica, continues the caller's trace.

Runs started before this revision have none: their executions start traces of their own.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``workflow_runs.trace_parent`` (empty for existing runs)."""
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop ``workflow_runs.trace_parent``."""
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("trace_parent")
