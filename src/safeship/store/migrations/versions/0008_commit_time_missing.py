"""Why a deployment has no commit time: `deployments.commit_time_missing`.

Lead time is measured from the commit time; a rollout that could not get one
(no --commit-time or SAFESHIP_COMMIT_TIME, and its sha not in the checkout, say)
records why, so `safeship report` can tell what would provide it. Rows from before
this revision keep NULL: nobody recorded why.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("deployments", sa.Column("commit_time_missing", sa.String(), nullable=True))


def downgrade() -> None:
    # batch: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("commit_time_missing")
