"""Rollout locks: who holds the one rollout of a service and environment.

The mutual exclusion itself is the database's or the OS's (a PostgreSQL advisory
lock, a file lock beside a SQLite file), which dies with its holder; this table
only says who holds it, so a second rollout can name the holder, and a row left
behind tells the next holder that the last one died.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rollout_locks",
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("deployment_id", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("service", "environment", name="pk_rollout_locks"),
    )


def downgrade() -> None:
    op.drop_table("rollout_locks")
