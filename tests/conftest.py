"""Fixtures shared by unit and integration tests: history stores on SQLite and PostgreSQL.

`store_url` runs a store test once per database: on a fresh SQLite file, and on a fresh
database of one PostgreSQL server started for the whole session (a database per test,
so tests never see each other's rows; creating one takes ~20 ms). The PostgreSQL runs
are integration tests: without PostgreSQL they skip, naming the Debian package, except
under SAFESHIP_REQUIRE_INTEGRATION=1, where they fail (CI must never pass by skipping).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.demo.postgres_server import POSTGRES_PACKAGE, PostgresServer, find_postgres_bin

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session; tests take databases from it."""
    if find_postgres_bin() is None:
        message = (
            f"PostgreSQL is not installed (Debian package `{POSTGRES_PACKAGE}`: "
            f"apt-get install {POSTGRES_PACKAGE})"
        )
        if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgresql_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of the session's PostgreSQL."""
    return postgres_server.create_database(f"t_{next(_database_numbers)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'history.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty history-store database: a SQLite file, or a PostgreSQL database.

    Dispatches to `sqlite_url` / `postgresql_url`, which a test with backends of its own
    (an in-memory store too) can request the same way.
    """
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
