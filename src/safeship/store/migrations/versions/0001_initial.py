"""Initial history-store schema: deployments, rollout states, decisions, smoke tests.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("commit_sha", sa.String(), nullable=True),
        sa.Column("commit_time", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("max_weight", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_deployments_service_environment_started_at",
        "deployments",
        ["service", "environment", "started_at"],
    )
    op.create_table(
        "rollout_states",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.String(),
            sa.ForeignKey("deployments.id", name="fk_rollout_states_deployment_id"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.UniqueConstraint("deployment_id", "seq", name="uq_rollout_states_deployment_id_seq"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.String(),
            sa.ForeignKey("deployments.id", name="fk_decisions_deployment_id"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.UniqueConstraint("deployment_id", "seq", name="uq_decisions_deployment_id_seq"),
    )
    op.create_table(
        "smoke_tests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.String(),
            sa.ForeignKey("deployments.id", name="fk_smoke_tests_deployment_id"),
            nullable=False,
        ),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("smoke_tests")
    op.drop_table("decisions")
    op.drop_table("rollout_states")
    op.drop_index("ix_deployments_service_environment_started_at", table_name="deployments")
    op.drop_table("deployments")
