"""Dashboard versions: which Grafana dashboard versions each deployment changed.

`safeship dashboards push` records every dashboard it saved (version before and
after), so `safeship dashboards rollback --deployment ID` can restore the versions
the dashboards had before that deployment. No foreign key to `deployments`: a push
may run under a deployment id that has no rollout of its own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(), nullable=False),
        sa.Column("uid", sa.String(), nullable=False),
        sa.Column("version_before", sa.Integer(), nullable=True),
        sa.Column("version_after", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
    )
    op.create_index("ix_dashboard_versions_deployment_id", "dashboard_versions", ["deployment_id"])


def downgrade() -> None:
    op.drop_index("ix_dashboard_versions_deployment_id", table_name="dashboard_versions")
    op.drop_table("dashboard_versions")
