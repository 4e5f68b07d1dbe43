"""Alembic environment: migrate on the connection safeship hands over.

safeship runs migrations in-process when it opens the store (see `upgrade_to_head`),
never through the alembic command line, so there is no offline mode, no URL to read
and no logging setup here: logging belongs to the application.
"""

from __future__ import annotations

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
