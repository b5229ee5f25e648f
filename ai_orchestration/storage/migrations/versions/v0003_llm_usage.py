"""LLM usage accounting: every LLM call, per-tenant budgets, and soft-threshold alerts.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``llm_calls``, ``llm_budgets`` and ``llm_budget_alerts``."""
    op.create_table(
        "llm_calls",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("called_at", _TIMESTAMP, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("deployment", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "call_id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_tenant_id_called_at", "llm_calls", ["tenant_id", "called_at"])
    op.create_table(
        "llm_budgets",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("monthly_limit_usd", sa.Float(), nullable=False),
        sa.Column("monthly_token_limit", sa.BigInteger(), nullable=False),
        sa.Column("soft_threshold", sa.Float(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_llm_budgets"),
    )
    op.create_table(
        "llm_budget_alerts",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("monthly_limit_usd", sa.Float(), nullable=False),
        sa.Column("monthly_token_limit", sa.BigInteger(), nullable=False),
        sa.Column("raised_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "month", name="pk_llm_budget_alerts"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("llm_budget_alerts")
    op.drop_table("llm_budgets")
    op.drop_index("ix_llm_calls_tenant_id_called_at", table_name="llm_calls")
    op.drop_table("llm_calls")
