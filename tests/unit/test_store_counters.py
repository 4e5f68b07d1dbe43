"""The history store's counters: upserts that add, one transaction, migration 0002."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite

from safeship.errors import StoreError
from safeship.store import migrations, open_store
from safeship.store.interface import CounterIncrement, CounterRecord, DeploymentRecord, Store
from safeship.store.sql import SqlStore, counter_upsert
from safeship.testing import MemoryStore


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sql(path: Path, statement: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(statement).fetchall()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture(params=["sql", "memory"])
def store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Store]:
    opened: Store = open_store(_url(db_path)) if request.param == "sql" else MemoryStore()
    yield opened
    opened.close()


def inc(
    name: str,
    value: float = 1.0,
    *,
    service: str = "checkout",
    environment: str = "",
    **labels: str,
) -> CounterIncrement:
    return CounterIncrement(service, environment, name, labels, value)


def test_counters_start_empty(store: Store) -> None:
    assert store.counters() == []
    store.add_to_counters([])
    assert store.counters() == []


def test_increments_add_to_existing_values(store: Store) -> None:
    store.add_to_counters([inc("q_total", workflow="analysis", result="success")])
    store.add_to_counters(
        [
            inc("q_total", 2, workflow="analysis", result="success"),
            inc("q_sum", 0.25, workflow="analysis"),
        ]
    )
    store.add_to_counters([inc("q_sum", 0.5, workflow="analysis")])
    assert store.counters() == [
        CounterRecord("checkout", "", "q_sum", {"workflow": "analysis"}, 0.75),
        CounterRecord("checkout", "", "q_total", {"result": "success", "workflow": "analysis"}, 3),
    ]


def test_the_same_series_twice_in_one_call_is_summed(store: Store) -> None:
    store.add_to_counters([inc("c", check="latency"), inc("c", 4, check="latency")])
    [record] = store.counters()
    assert record.value == 5


def test_label_order_does_not_matter_and_every_key_part_tells_series_apart(store: Store) -> None:
    store.add_to_counters(
        [
            CounterIncrement("checkout", "prod", "c", {"a": "1", "b": "2"}, 1),
            CounterIncrement("checkout", "prod", "c", {"b": "2", "a": "1"}, 1),
            CounterIncrement("checkout", "staging", "c", {"a": "1", "b": "2"}, 1),
            CounterIncrement("billing", "prod", "c", {"a": "1", "b": "2"}, 1),
            CounterIncrement("checkout", "prod", "d", {"a": "1", "b": "2"}, 1),
            CounterIncrement("checkout", "prod", "c", {"a": "1", "b": "3"}, 1),
        ]
    )
    values = {(r.service, r.environment, r.name, r.labels["b"]): r.value for r in store.counters()}
    assert values == {
        ("billing", "prod", "c", "2"): 1,
        ("checkout", "prod", "c", "2"): 2,
        ("checkout", "prod", "c", "3"): 1,
        ("checkout", "prod", "d", "2"): 1,
        ("checkout", "staging", "c", "2"): 1,
    }


def test_counters_are_filtered_by_service(store: Store) -> None:
    store.add_to_counters([inc("c"), inc("c", service="billing")])
    assert [r.service for r in store.counters(service="billing")] == ["billing"]
    assert [r.service for r in store.counters()] == ["billing", "checkout"]


def test_counters_survive_reopening(db_path: Path) -> None:
    first = open_store(_url(db_path))
    first.add_to_counters([inc("c", 2, check="x")])
    first.close()
    second = open_store(_url(db_path))
    second.add_to_counters([inc("c", 3, check="x")])
    assert [r.value for r in second.counters()] == [5]
    second.close()


def test_one_call_is_one_transaction(db_path: Path) -> None:
    store = open_store(_url(db_path))
    assert isinstance(store, SqlStore)
    commits: list[object] = []
    sqlalchemy.event.listen(store._engine, "commit", commits.append)
    store.add_to_counters([inc("c", check=str(i)) for i in range(20)])
    store.add_to_counters([inc("c", check=str(i)) for i in range(25)])
    assert len(commits) == 2
    assert len(store.counters()) == 25
    store.close()


def test_a_failing_increment_applies_none_of_the_call(db_path: Path) -> None:
    store = open_store(_url(db_path))
    store.add_to_counters([inc("ok")])
    # A database refusing one of the rows, half way through the call.
    _sql(
        db_path,
        "CREATE TRIGGER refuse BEFORE INSERT ON counters WHEN NEW.name = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    with pytest.raises(StoreError, match="adding to counters failed: refused"):
        store.add_to_counters([inc("ok"), inc("new"), inc("boom")])
    assert [(r.name, r.value) for r in store.counters()] == [("ok", 1)]
    store.close()


def test_upserts_add_on_conflict_in_sqlite_and_postgresql() -> None:
    for dialect, compiled_with in (
        ("postgresql", postgresql.dialect()),
        ("sqlite", sqlite.dialect()),
    ):
        upsert = counter_upsert(dialect)
        assert upsert is not None
        sql = " ".join(str(upsert.compile(dialect=compiled_with)).split())
        assert "ON CONFLICT (service, environment, name, labels) DO UPDATE SET value = " in sql
        assert "counters.value + excluded.value" in sql
    assert counter_upsert("mysql") is None  # others update-then-insert, portably


def test_databases_without_upsert_add_by_update_then_insert(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("safeship.store.sql.counter_upsert", lambda _dialect: None)
    store = open_store(_url(db_path))
    store.add_to_counters([inc("c", check="a"), inc("c", 2, check="a")])
    store.add_to_counters([inc("c", check="a"), inc("c", check="b")])
    assert [(r.labels["check"], r.value) for r in store.counters()] == [("a", 4), ("b", 1)]
    store.close()


# --- migration 0002 ---------------------------------------------------------------------------


def test_migration_0002_adds_counters_to_a_0001_database_and_keeps_its_rows(
    db_path: Path,
) -> None:
    engine = sqlalchemy.create_engine(_url(db_path))
    try:
        with engine.connect() as conn:
            command.upgrade(migrations._config(conn), "0001")
            conn.commit()
    finally:
        engine.dispose()
    assert _sql(db_path, "SELECT version_num FROM alembic_version") == [("0001",)]
    tables = {name for (name,) in _sql(db_path, "SELECT name FROM sqlite_master")}
    assert "counters" not in tables
    _sql(
        db_path,
        "INSERT INTO deployments (id, service, environment, version, started_at,"
        " finished_at, outcome, max_weight)"
        " VALUES ('d1', 'checkout', 'prod', 'v1', 10.0, 70.0, 'promoted', 100)",
    )

    store = open_store(_url(db_path))
    try:
        assert _sql(db_path, "SELECT version_num FROM alembic_version") == [
            ("0003",)
        ]  # opening migrates to the head
        assert store.get_deployment("d1") == DeploymentRecord(
            id="d1",
            service="checkout",
            environment="prod",
            version="v1",
            started_at=10.0,
            finished_at=70.0,
            outcome="promoted",
            max_weight=100,
        )
        store.add_to_counters([inc("c", 2)])
        assert [r.value for r in store.counters()] == [2]
    finally:
        store.close()


def test_migration_0002_downgrades_to_0001(db_path: Path) -> None:
    open_store(_url(db_path)).close()
    engine = sqlalchemy.create_engine(_url(db_path))
    try:
        with engine.connect() as conn:
            command.downgrade(migrations._config(conn), "0001")
            conn.commit()
    finally:
        engine.dispose()
    tables = {name for (name,) in _sql(db_path, "SELECT name FROM sqlite_master")}
    assert "counters" not in tables
    assert "deployments" in tables
