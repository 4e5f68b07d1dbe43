"""Alembic migrations of the history store, run in-process whenever the store is opened.

Everything Alembic needs is built here from the package directory, so neither an
alembic.ini nor a particular working directory is required, and an installed safeship
migrates the same way a checkout does.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).parent

# Alembic's `context` and `op` are module globals, so two migrations running at once in
# one process (even on different databases) would drive each other's connections.
_UPGRADE_LOCK = threading.Lock()


class SchemaTooNewError(Exception):
    """The database carries a revision this safeship does not know: a newer one wrote it."""


def _config(connection: Connection) -> Config:
    config = Config(attributes={"connection": connection})
    # Config options go through ConfigParser interpolation, which treats "%" specially.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    return config


def pending(connection: Connection) -> bool:
    """Whether the database is behind head; `SchemaTooNewError` if it is ahead of this code."""
    script = ScriptDirectory.from_config(_config(connection))
    current = set(MigrationContext.configure(connection).get_current_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:
        raise SchemaTooNewError(
            f"the database is at schema revision {', '.join(unknown)}, newer than this "
            f"safeship knows (head {', '.join(sorted(script.get_heads()))}); upgrade safeship"
        )
    return current != set(script.get_heads())


def upgrade_to_head(connection: Connection) -> None:
    """Migrate to head inside the caller's transaction, which the caller commits.

    Checks again first, because another process may have migrated while this one
    waited for the lock.
    """
    with _UPGRADE_LOCK:
        if pending(connection):
            command.upgrade(_config(connection), "head")
