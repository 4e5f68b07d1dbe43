"""The SQL history store on SQLite and PostgreSQL: records, ordering, durability, migrations,
errors. Tests taking `store_url` run on both (see tests/conftest.py); the others are about
SQLite files."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from safeship.errors import ConfigError, SafeshipError, StateConflictError, StoreError
from safeship.store import migrations, open_store
from safeship.store.interface import (
    DecisionRecord,
    DeploymentRecord,
    SlotAssignment,
    SmokeTestRecord,
    Store,
)
from safeship.store.sql import metadata, redact_url


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _deployment(
    deployment_id: str = "d1",
    *,
    service: str = "checkout",
    environment: str = "prod",
    started_at: float = 1000.0,
) -> DeploymentRecord:
    return DeploymentRecord(
        id=deployment_id,
        service=service,
        environment=environment,
        version="1.2.3",
        started_at=started_at,
    )


def _decision(deployment_id: str = "d1", **inputs: Any) -> DecisionRecord:
    return DecisionRecord(
        deployment_id=deployment_id,
        at=1010.5,
        action="advance",
        step=1,
        weight=10,
        result="pass",
        reason="error rate within budget",
        inputs=inputs,
    )


def _smoke(deployment_id: str, name: str, at: float, service: str = "checkout") -> SmokeTestRecord:
    return SmokeTestRecord(
        deployment_id=deployment_id,
        service=service,
        environment="prod",
        name=name,
        passed=name != "fails",
        duration=0.25,
        at=at,
        detail="HTTP 200",
    )


def _sql(path: Path, statement: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(statement).fetchall()


def _execute(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run one statement on either database, behind the store's back, and commit it."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(statement)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# --- deployments ---------------------------------------------------------------------------


def test_created_deployment_reads_back_with_every_field(store: Store) -> None:
    record = DeploymentRecord(
        id="d1",
        service="checkout",
        environment="prod",
        version="1.2.3",
        started_at=1000.25,
        commit_sha="abc123",
        commit_time=990.5,
        finished_at=1100.75,
        outcome="promoted",
        reason="all steps passed",
        max_weight=100,
    )
    store.create_deployment(record)
    assert store.get_deployment("d1") == record


def test_a_deployment_without_a_commit_time_reads_back_with_why(store: Store) -> None:
    record = DeploymentRecord(
        id="d1",
        service="checkout",
        environment="prod",
        version="1.2.3",
        started_at=1000.25,
        commit_sha="abc123",
        commit_time_missing="sha_not_in_checkout",
    )
    store.create_deployment(record)
    assert store.get_deployment("d1") == record


def test_unknown_deployment_is_none(store: Store) -> None:
    assert store.get_deployment("nope") is None


def test_creating_an_existing_id_raises_store_error_and_keeps_the_original(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    with pytest.raises(StoreError, match="'d1' already exists"):
        store.create_deployment(_deployment("d1", service="other"))
    assert store.get_deployment("d1") == _deployment("d1")


def test_update_sets_given_fields_and_leaves_the_others(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    store.update_deployment("d1", outcome="paused", max_weight=25)
    updated = store.update_deployment("d1", finished_at=1200.0, reason="manual")
    expected = DeploymentRecord(
        id="d1",
        service="checkout",
        environment="prod",
        version="1.2.3",
        started_at=1000.0,
        finished_at=1200.0,
        outcome="paused",
        reason="manual",
        max_weight=25,
    )
    assert updated == expected
    assert store.get_deployment("d1") == expected


def test_updating_an_unknown_deployment_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no deployment 'ghost'"):
        store.update_deployment("ghost", outcome="promoted")


def test_deployments_are_listed_newest_first_with_id_breaking_ties(store: Store) -> None:
    for deployment_id, started_at in [("a", 1.0), ("c", 3.0), ("b", 3.0), ("d", 2.0)]:
        store.create_deployment(_deployment(deployment_id, started_at=started_at))
    assert [d.id for d in store.list_deployments()] == ["c", "b", "d", "a"]


def test_deployments_are_filtered_by_service_environment_since_and_limit(store: Store) -> None:
    store.create_deployment(_deployment("old", started_at=1.0))
    store.create_deployment(_deployment("new", started_at=5.0))
    store.create_deployment(_deployment("newer", started_at=6.0))
    store.create_deployment(_deployment("staging", environment="staging", started_at=7.0))
    store.create_deployment(_deployment("cart", service="cart", started_at=8.0))

    assert [d.id for d in store.list_deployments(service="cart")] == ["cart"]
    assert [d.id for d in store.list_deployments(environment="staging")] == ["staging"]
    in_prod = store.list_deployments(service="checkout", environment="prod", since=5.0)
    assert [d.id for d in in_prod] == ["newer", "new"]
    assert [d.id for d in store.list_deployments(limit=2)] == ["cart", "staging"]


# --- rollout state -------------------------------------------------------------------------


def test_load_state_is_none_before_any_snapshot(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    assert store.load_state("d1") is None
    assert store.state_history("d1") == []


def test_load_state_returns_the_latest_snapshot_and_history_is_oldest_first(
    store: Store,
) -> None:
    store.create_deployment(_deployment("d1"))
    store.create_deployment(_deployment("d2"))
    # Same timestamps on purpose: order must come from insertion, not from `at`.
    store.save_state("d1", 5.0, {"phase": "smoke", "step": 0})
    store.save_state("d2", 5.0, {"phase": "other"})
    store.save_state("d1", 5.0, {"phase": "canary", "step": 1, "weights": [5, 10]})
    store.save_state("d1", 6.0, {"phase": "canary", "step": 2, "nested": {"ok": True}})

    assert store.load_state("d1") == {"phase": "canary", "step": 2, "nested": {"ok": True}}
    assert store.state_history("d1") == [
        (5.0, {"phase": "smoke", "step": 0}),
        (5.0, {"phase": "canary", "step": 1, "weights": [5, 10]}),
        (6.0, {"phase": "canary", "step": 2, "nested": {"ok": True}}),
    ]
    assert store.state_history("d2") == [(5.0, {"phase": "other"})]


def test_a_state_saved_after_a_known_one_is_refused_when_someone_saved_in_between(
    store: Store,
) -> None:
    store.create_deployment(_deployment("d1"))
    assert store.latest_state("d1") is None
    first = store.save_state("d1", 1.0, {"phase": "holding"}, after=0)
    assert store.latest_state("d1") == (first, {"phase": "holding"})
    # Another process (an abort from a second terminal) writes next...
    theirs = store.save_state("d1", 2.0, {"phase": "rolling_back"}, after=first)
    # ...so the first process's write, based on the state it knew, is refused.
    with pytest.raises(StateConflictError, match="changed by another process"):
        store.save_state("d1", 3.0, {"phase": "shifting"}, after=first)
    assert store.latest_state("d1") == (theirs, {"phase": "rolling_back"})
    assert store.save_state("d1", 4.0, {"phase": "rolled_back"}, after=theirs) == theirs + 1


# --- decisions -----------------------------------------------------------------------------


def test_decisions_are_numbered_from_one_per_deployment(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    store.create_deployment(_deployment("d2"))
    seqs = [
        store.add_decision(_decision("d1")).seq,
        store.add_decision(_decision("d1")).seq,
        store.add_decision(_decision("d2")).seq,
        store.add_decision(_decision("d1")).seq,
    ]
    assert seqs == [1, 2, 1, 3]
    assert [d.seq for d in store.decisions("d1")] == [1, 2, 3]


def test_decisions_round_trip_with_their_inputs(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    first = store.add_decision(
        _decision("d1", error_rate={"canary": 0.0125, "baseline": 0.01}, samples=[1, 2, 3])
    )
    second = store.add_decision(_decision("d1", note="ünïcode", missing=None, flag=False))
    assert first.inputs == {
        "error_rate": {"canary": 0.0125, "baseline": 0.01},
        "samples": [1, 2, 3],
    }
    assert store.decisions("d1") == [first, second]


def test_a_decision_for_an_unknown_deployment_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match=r"(?i)foreign key"):
        store.add_decision(_decision("ghost"))


def test_a_payload_that_is_not_json_raises_store_error_and_writes_nothing(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    with pytest.raises(StoreError, match="not JSON"):
        store.add_decision(_decision("d1", when=object()))
    with pytest.raises(StoreError, match="not JSON"):
        store.save_state("d1", 1.0, {"when": object()})
    assert store.decisions("d1") == []
    assert store.load_state("d1") is None


# --- smoke tests ---------------------------------------------------------------------------


def test_smoke_tests_are_oldest_first_and_filtered(store: Store) -> None:
    store.create_deployment(_deployment("d1"))
    store.create_deployment(_deployment("d2", service="cart"))
    later = _smoke("d1", "fails", at=20.0)
    earlier = _smoke("d1", "health", at=10.0)
    cart = _smoke("d2", "health", at=15.0, service="cart")
    for record in (later, earlier, cart):
        store.add_smoke_test(record)

    assert store.smoke_tests() == [earlier, cart, later]
    assert store.smoke_tests(deployment_id="d1") == [earlier, later]
    assert store.smoke_tests(service="cart") == [cart]
    assert store.smoke_tests(environment="prod", service="checkout") == [earlier, later]
    assert store.smoke_tests(environment="staging") == []
    assert [r.passed for r in store.smoke_tests(deployment_id="d1")] == [True, False]


def test_concurrent_decisions_for_one_deployment_get_distinct_numbers(store_url: str) -> None:
    # Several runners writing for one deployment (the controller and a `rollout promote`).
    setup = open_store(store_url)
    setup.create_deployment(_deployment("d1"))
    setup.close()
    stores = [open_store(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    seqs: list[int] = []
    errors: list[BaseException] = []

    def record(store: Store) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                seqs.append(store.add_decision(_decision("d1")).seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=[store]) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sorted(seqs) == list(range(1, 21))
        assert [d.seq for d in stores[0].decisions("d1")] == list(range(1, 21))
    finally:
        for store in stores:
            store.close()


# --- durability and SQLite settings --------------------------------------------------------


def test_a_write_is_visible_to_another_store_before_the_writer_closes(store_url: str) -> None:
    writer = open_store(store_url)
    reader = open_store(store_url)
    try:
        writer.create_deployment(_deployment("d1"))
        decision = writer.add_decision(_decision("d1", x=1))
        assert reader.get_deployment("d1") == _deployment("d1")
        assert reader.decisions("d1") == [decision]
    finally:
        writer.close()
        reader.close()


def test_a_reopened_store_keeps_its_data(store_url: str) -> None:
    first = open_store(store_url)
    first.create_deployment(_deployment("d1"))
    first.save_state("d1", 1.0, {"step": 1})
    decision = first.add_decision(_decision("d1"))
    first.add_smoke_test(_smoke("d1", "health", at=2.0))
    first.close()

    second = open_store(store_url)
    try:
        assert second.get_deployment("d1") == _deployment("d1")
        assert second.load_state("d1") == {"step": 1}
        assert second.decisions("d1") == [decision]
        assert second.smoke_tests() == [_smoke("d1", "health", at=2.0)]
        assert second.add_decision(_decision("d1")).seq == 2
    finally:
        second.close()


def test_a_relative_sqlite_path_is_created_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_store("sqlite:///.safeship/history.db")
    monkeypatch.chdir("/")  # the store keeps using the file it opened
    try:
        opened.create_deployment(_deployment("d1"))
    finally:
        opened.close()
    assert _sql(tmp_path / ".safeship" / "history.db", "SELECT id FROM deployments") == [("d1",)]


def test_a_directory_that_cannot_be_created_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create directory"):
        open_store(_url(blocker / "history.db"))


def test_the_sqlite_file_is_in_wal_mode(db_path: Path) -> None:
    open_store(_url(db_path)).close()
    assert _sql(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_a_write_waits_for_a_lock_held_by_another_process_instead_of_failing(
    db_path: Path,
) -> None:
    store = open_store(_url(db_path))
    with closing(sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, other.execute, ["COMMIT"])
        release.start()
        started = time.monotonic()
        try:
            store.create_deployment(_deployment("d1"))
        finally:
            release.join()
    try:
        assert time.monotonic() - started >= 0.25
        assert store.get_deployment("d1") == _deployment("d1")
    finally:
        store.close()


# --- migrations ----------------------------------------------------------------------------


def _code_heads() -> set[str]:
    return set(ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_heads())


def test_a_new_database_is_migrated_to_head(store: Store, store_url: str) -> None:
    versions = _execute(store_url, "SELECT version_num FROM alembic_version")
    assert {version for (version,) in versions} == _code_heads()
    assert {"deployments", "rollout_states", "decisions", "smoke_tests"} <= _table_names(store_url)


def test_the_migrated_schema_matches_the_tables_the_store_queries(
    store: Store, store_url: str
) -> None:
    engine = sqlalchemy.create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_reopening_a_migrated_database_runs_no_migration(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("migration ran on a database already at head")

    monkeypatch.setattr(command, "upgrade", fail)
    open_store(store_url).close()


def test_a_database_newer_than_the_code_raises_store_error(store: Store, store_url: str) -> None:
    _execute(store_url, "UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(StoreError, match="9999_future, newer than this safeship"):
        open_store(store_url)


def test_migrating_prints_nothing_and_leaves_logging_alone(
    store_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    def logging_setup() -> tuple[object, ...]:
        loggers = logging.root.manager.loggerDict.values()
        disabled = {id(lg) for lg in loggers if isinstance(lg, logging.Logger) and lg.disabled}
        return (list(logging.root.handlers), logging.root.level, disabled)

    logging.getLogger("safeship.test")  # an existing logger, which fileConfig would disable
    before = logging_setup()
    open_store(store_url).close()
    assert logging_setup() == before
    assert capfd.readouterr() == ("", "")


def test_concurrent_first_opens_in_one_process_all_succeed(tmp_path: Path) -> None:
    # Two threads per file: different databases and the same database at once.
    urls = [_url(tmp_path / f"history{i % 2}.db") for i in range(4)]
    barrier = threading.Barrier(len(urls))
    errors: list[BaseException] = []

    def open_once(url: str) -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_once, args=[url]) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


_OPEN_AT = """
import sys, time
import safeship.store.sql  # imported before the wait, so the processes start level
from safeship.store import open_store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
open_store(sys.argv[1]).close()
"""


def test_concurrent_first_opens_of_one_database_by_several_processes_all_succeed(
    store_url: str,
) -> None:
    # The processes start together once all have imported, so their migrations overlap.
    start_at = str(time.time() + 1.5)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT, store_url, start_at],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = [stderr for p in processes if (stderr := p.communicate()[1]) or p.returncode]
    assert failures == []


# --- URLs and passwords in messages --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:s3cret@db:5432/app", "postgresql://user:***@db:5432/app"),
        ("postgresql+psycopg://user:s3cret@db/app", "postgresql+psycopg://user:***@db/app"),
        ("postgresql://db/app?user=u&password=s3cret", "postgresql://db/app?password=***&user=u"),
        ("sqlite:///.safeship/history.db", "sqlite:///.safeship/history.db"),
        ("no scheme://user:s3cret@db/app", "no scheme://user:***@db/app"),
    ],
)
def test_redact_url_masks_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        # Without a PostgreSQL driver this fails on the driver, with one on the refused
        # port; either way at once, and the message must not carry the password.
        "postgresql://user:s3cret@127.0.0.1:1/db",
        "sqlite://user:s3cret@/history.db",
        "nosuchdb://user:s3cret@host/db",
        "not a url user:s3cret@host",
    ],
)
def test_errors_opening_a_store_never_show_the_password(url: str) -> None:
    with pytest.raises(SafeshipError) as caught:
        open_store(url)
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 installed")
def test_a_missing_database_driver_is_named_in_the_error() -> None:
    with pytest.raises(
        ConfigError, match=r"driver is not installed \(No module named 'psycopg2'\)"
    ):
        open_store("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")


def test_slot_assignments_are_a_history_newest_first_per_service_and_environment(
    store: Store,
) -> None:
    def change(at: float, what: str, stable: str, version: str | None) -> SlotAssignment:
        other = "green" if stable == "blue" else "blue"
        return SlotAssignment("checkout", "production", at, f"d{at:g}", what, stable, version,
                              other, "v9")  # fmt: skip

    assert store.slot_history("checkout", "production") == []
    first, second = change(1, "deployed", "blue", None), change(2, "promoted", "green", "v9")
    store.record_slots(first)
    store.record_slots(second)
    store.record_slots(dataclasses.replace(first, environment="staging"))
    assert store.slot_history("checkout", "production") == [second, first]
    assert store.slot_history("checkout", "production", limit=1) == [second]
    assert store.slot_history("payments", "production") == []
