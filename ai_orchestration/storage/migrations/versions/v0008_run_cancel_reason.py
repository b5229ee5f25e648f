"""Runs: why a run was cancelled (CancelRun's reason), kept on the run.

Runs cancelled before this revision keep an empty reason; their ``state_changed`` event still
says why.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``workflow_runs.cancel_reason`` (empty for existing runs)."""
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop ``workflow_runs.cancel_reason``."""
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("cancel_reason")
