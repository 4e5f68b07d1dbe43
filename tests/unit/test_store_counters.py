"""The history store's counters: upserts that add, one transaction, migration 0002.

On SQLite, PostgreSQL (see `store_url` in tests/conftest.py) and the in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite

from safeship.errors import StoreError
from safeship.store import migrations, open_store
from safeship.store.interface import CounterIncrement, CounterRecord, DeploymentRecord, Store
from safeship.store.sql import SqlStore, counter_upsert
from safeship.testing import MemoryStore


def _execute(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on either database behind the store's back; the last one's rows."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                result = conn.exec_driver_sql(statement)
                rows = [tuple(row) for row in result] if result.returns_rows else []
            return rows
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration), "memory"]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    opened: Store = (
        MemoryStore()
        if request.param == "memory"
        else open_store(request.getfixturevalue(f"{request.param}_url"))
    )
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


def test_counters_survive_reopening(store_url: str) -> None:
    first = open_store(store_url)
    first.add_to_counters([inc("c", 2, check="x")])
    first.close()
    second = open_store(store_url)
    second.add_to_counters([inc("c", 3, check="x")])
    assert [r.value for r in second.counters()] == [5]
    second.close()


def test_one_call_is_one_transaction(store_url: str) -> None:
    store = open_store(store_url)
    assert isinstance(store, SqlStore)
    commits: list[object] = []
    sqlalchemy.event.listen(store._engine, "commit", commits.append)
    store.add_to_counters([inc("c", check=str(i)) for i in range(20)])
    store.add_to_counters([inc("c", check=str(i)) for i in range(25)])
    assert len(commits) == 2
    assert len(store.counters()) == 25
    store.close()


# A database refusing one of the rows, half way through a call.
_REFUSE_BOOM = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON counters WHEN NEW.name = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.name = 'boom' THEN RAISE 'refused'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON counters FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_a_failing_increment_applies_none_of_the_call(store_url: str) -> None:
    store = open_store(store_url)
    store.add_to_counters([inc("ok")])
    _execute(store_url, *_REFUSE_BOOM[sqlalchemy.make_url(store_url).get_backend_name()])
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
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("safeship.store.sql.counter_upsert", lambda _dialect: None)
    store = open_store(store_url)
    store.add_to_counters([inc("c", check="a"), inc("c", 2, check="a")])
    store.add_to_counters([inc("c", check="a"), inc("c", check="b")])
    assert [(r.labels["check"], r.value) for r in store.counters()] == [("a", 4), ("b", 1)]
    store.close()


# --- migration 0002 ---------------------------------------------------------------------------


def test_migration_0002_adds_counters_to_a_0001_database_and_keeps_its_rows(
    store_url: str,
) -> None:
    engine = sqlalchemy.create_engine(store_url)
    try:
        with engine.connect() as conn:
            command.upgrade(migrations._config(conn), "0001")
            conn.commit()
    finally:
        engine.dispose()
    assert _execute(store_url, "SELECT version_num FROM alembic_version") == [("0001",)]
    assert "counters" not in _table_names(store_url)
    _execute(
        store_url,
        "INSERT INTO deployments (id, service, environment, version, started_at,"
        " finished_at, outcome, max_weight)"
        " VALUES ('d1', 'checkout', 'prod', 'v1', 10.0, 70.0, 'promoted', 100)",
    )

    store = open_store(store_url)
    try:
        heads = ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_heads()
        versions = _execute(store_url, "SELECT version_num FROM alembic_version")
        assert [version for (version,) in versions] == heads  # opening migrates to the head
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


def test_migration_0002_downgrades_to_0001(store_url: str) -> None:
    open_store(store_url).close()
    engine = sqlalchemy.create_engine(store_url)
    try:
        with engine.connect() as conn:
            command.downgrade(migrations._config(conn), "0001")
            conn.commit()
    finally:
        engine.dispose()
    tables = _table_names(store_url)
    assert "counters" not in tables
    assert "deployments" in tables
