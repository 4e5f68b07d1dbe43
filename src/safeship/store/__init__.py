"""Deployment history and rollout state: SQLite by default, PostgreSQL for shared history."""

from __future__ import annotations

from safeship.store.interface import Store


def open_store(url: str) -> Store:
    """The store at `url` (a SQLAlchemy URL), migrated to the newest schema.

    Raises `StoreError` if it cannot be opened or migrated, or was written by a newer
    safeship.
    """
    # Imported here so that importing the store interface does not load SQLAlchemy and Alembic.
    from safeship.store.sql import SqlStore

    store = SqlStore(url)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
