"""Prompt templates: immutable versions (global or per tenant) and A/B splits between them.

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types at this revision: migrations must not change when models do.
_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``prompt_templates`` and ``prompt_template_experiments``."""
    op.create_table(
        "prompt_templates",
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("system_text", sa.String(), nullable=False),
        sa.Column("user_text", sa.String(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner", "name", "version", name="pk_prompt_templates"),
    )
    op.create_table(
        "prompt_template_experiments",
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arms", _JSON, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner", "name", name="pk_prompt_template_experiments"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("prompt_template_experiments")
    op.drop_table("prompt_templates")
