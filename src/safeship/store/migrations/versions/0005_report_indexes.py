"""Report indexes: deployments and smoke tests by time, for `safeship report`.

The report filters on `deployments.started_at` and `smoke_tests.at` over a period
of any service and environment; the existing (service, environment, started_at)
index cannot serve a range on its last column alone, so without these a report
reads the whole history.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_deployments_started_at", "deployments", ["started_at"])
    op.create_index("ix_smoke_tests_at", "smoke_tests", ["at"])


def downgrade() -> None:
    op.drop_index("ix_smoke_tests_at", table_name="smoke_tests")
    op.drop_index("ix_deployments_started_at", table_name="deployments")
