"""Counters: running totals of metrics that have no history row of their own.

Prometheus query counts and timings and canary-analysis results are added up here,
so every process (a short-lived CI job included) exports the true running totals.
One row per series: service, environment ("" when the metric has none), sample
name, and the other labels as JSON with sorted keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("labels", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("service", "environment", "name", "labels", name="pk_counters"),
    )


def downgrade() -> None:
    op.drop_table("counters")
