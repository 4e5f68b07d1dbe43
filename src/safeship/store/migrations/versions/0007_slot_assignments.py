"""Slot assignments: which version each slot of a service serves, and every change of it.

One row per change, appended by the rollout controller when a rollout deploys
into the canary slot, promotes it, or rolls back; the newest row is the
current assignment. It is the history store's side of "which version runs
where"; the router's own state says which slot is stable.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "slot_assignments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("deployment_id", sa.String(), nullable=False),
        sa.Column("change", sa.String(), nullable=False),
        sa.Column("stable_slot", sa.String(), nullable=False),
        sa.Column("stable_version", sa.String(), nullable=True),
        sa.Column("canary_slot", sa.String(), nullable=False),
        sa.Column("canary_version", sa.String(), nullable=True),
    )
    op.create_index(
        "ix_slot_assignments_service_environment",
        "slot_assignments",
        ["service", "environment"],
    )


def downgrade() -> None:
    op.drop_index("ix_slot_assignments_service_environment", table_name="slot_assignments")
    op.drop_table("slot_assignments")
