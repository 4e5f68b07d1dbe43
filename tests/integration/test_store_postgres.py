"""The history store on a real PostgreSQL 15, shared the way many CI runners share it.

The store's own behaviour runs on both databases in tests/unit/test_store*.py; here is
what only PostgreSQL brings: the same schema from the same migrations, concurrent
writers in several processes, an unreachable server, and a whole `safeship rollout`
whose history another command reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.dialects import postgresql

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import free_port
from safeship.demo.service import ServiceProcess, start_service
from safeship.errors import StoreUnavailableError
from safeship.routers.local import LocalProxyProcess, start_local_proxy
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord
from safeship.store.sql import _MIGRATION_LOCK_KEY

pytestmark = pytest.mark.integration


def _schema(url: str) -> dict[str, Any]:
    """Tables with their columns, keys, indexes and constraints, in comparable form."""
    open_store(url).close()  # migrates from empty
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sqlalchemy.inspect(conn)
            schema: dict[str, Any] = {}
            for table in sorted(inspector.get_table_names()):
                columns = {
                    c["name"]: (_type_name(c["type"]), c["nullable"])
                    for c in inspector.get_columns(table)
                }
                indexes = {
                    (i["name"], tuple(i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table)
                    if "duplicates_constraint" not in i  # PostgreSQL's index of a constraint
                }
                uniques = {
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                }
                foreign_keys = {
                    (f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                    for f in inspector.get_foreign_keys(table)
                }
                primary_key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
                schema[table] = (columns, primary_key, indexes, uniques, foreign_keys)
            return schema
    finally:
        engine.dispose()


def _type_name(column_type: sqlalchemy.types.TypeEngine[Any]) -> str:
    generic = column_type.as_generic()
    # Floats are 8 bytes on both: SQLite's REAL always is, and PostgreSQL reports its
    # double precision as Double (a Float), which the next test also checks.
    return "Float" if isinstance(generic, sqlalchemy.Float) else type(generic).__name__


def test_migrations_build_the_same_schema_on_postgresql_as_on_sqlite(
    postgresql_url: str, sqlite_url: str
) -> None:
    on_postgresql = _schema(postgresql_url)
    assert on_postgresql == _schema(sqlite_url)
    assert set(on_postgresql) == {
        "alembic_version",
        "counters",
        "dashboard_versions",
        "decisions",
        "deployments",
        "rollout_locks",
        "rollout_states",
        "slot_assignments",
        "smoke_tests",
    }


def test_epoch_seconds_keep_microseconds_on_postgresql(postgresql_url: str) -> None:
    # A single-precision column would round 2026's epoch seconds to minutes.
    store = open_store(postgresql_url)
    record = DeploymentRecord(
        id="d1",
        service="checkout",
        environment="prod",
        version="v1",
        started_at=1795774123.123456,
        finished_at=1795774183.654321,
        commit_time=1795770000.000001,
    )
    try:
        store.create_deployment(record)
        assert store.get_deployment("d1") == record
    finally:
        store.close()
    engine = sqlalchemy.create_engine(postgresql_url)
    try:
        with engine.connect() as conn:
            columns = sqlalchemy.inspect(conn).get_columns("deployments")
    finally:
        engine.dispose()
    started_at = next(c for c in columns if c["name"] == "started_at")
    assert isinstance(started_at["type"], postgresql.DOUBLE_PRECISION)


_INCREMENT = """
import sys, threading, time
from safeship.store import open_store
from safeship.store.interface import CounterIncrement

url, start_at, calls = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
store = open_store(url)

def add(reverse: bool) -> None:
    increments = [
        CounterIncrement("checkout", "prod", "queries_total", {"n": str(i)}, 1.0)
        for i in range(3)
    ]
    for _ in range(calls):
        # Half the writers list the series backwards: the store must not deadlock.
        store.add_to_counters(increments[::-1] if reverse else increments)

threads = [threading.Thread(target=add, args=[reverse]) for reverse in (False, True)]
time.sleep(max(0.0, start_at - time.time()))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
store.close()
"""


def test_concurrent_counter_increments_from_several_processes_lose_nothing(
    postgresql_url: str,
) -> None:
    open_store(postgresql_url).close()  # migrated before, so the writers overlap at once
    processes, calls = 4, 60
    start_at = str(time.time() + 1.5)
    runners = [
        subprocess.Popen(
            [sys.executable, "-c", _INCREMENT, postgresql_url, start_at, str(calls)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    failures = [stderr for p in runners if (stderr := p.communicate()[1]) or p.returncode]
    assert failures == []
    store = open_store(postgresql_url)
    try:
        totals = {r.labels["n"]: r.value for r in store.counters()}
    finally:
        store.close()
    # Two threads per process, each adding 1 to every series per call.
    assert totals == {str(i): processes * 2 * calls for i in range(3)}


_OPEN = """
import sys
from safeship.store import open_store
store = open_store(sys.argv[1])
store.add_to_counters([])
store.close()
"""


def test_a_migration_waits_for_one_in_progress_and_then_finds_the_schema_migrated(
    postgresql_url: str,
) -> None:
    # This test holds the migration lock as a migrating runner would; the runners that
    # start meanwhile must wait for it, then each find nothing left to do, not race.
    engine = sqlalchemy.create_engine(postgresql_url)
    try:
        with engine.connect() as holder:
            holder.execute(sqlalchemy.select(sqlalchemy.func.pg_advisory_lock(_MIGRATION_LOCK_KEY)))
            runners = [
                subprocess.Popen(
                    [sys.executable, "-c", _OPEN, postgresql_url],
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(3)
            ]
            waiting = 0
            deadline = time.monotonic() + 20
            while waiting < len(runners) and time.monotonic() < deadline:
                time.sleep(0.05)
                waiting = holder.execute(
                    sqlalchemy.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                ).scalar_one()
            assert all(runner.poll() is None for runner in runners)
            holder.execute(
                sqlalchemy.select(sqlalchemy.func.pg_advisory_unlock(_MIGRATION_LOCK_KEY))
            )
            holder.commit()
            failures = [stderr for p in runners if (stderr := p.communicate()[1]) or p.returncode]
    finally:
        engine.dispose()
    assert waiting == len(runners)
    assert failures == []


def test_an_unreachable_postgresql_is_unavailable_and_the_password_is_never_shown(
    tmp_path: Path,
) -> None:
    url = f"postgresql://deployer:s3cret-pw@127.0.0.1:{free_port()}/history"
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(url)
    shown = "".join(traceback.format_exception(caught.value))
    assert "postgresql://deployer:***@127.0.0.1" in str(caught.value)
    assert "s3cret-pw" not in shown

    listed = _safeship("--store", url, "rollout", "list", cwd=tmp_path)
    assert listed.returncode == 3, listed.stderr  # infrastructure unavailable
    assert "deployer:***@" in listed.stderr
    assert "s3cret-pw" not in listed.stdout + listed.stderr


def _safeship(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeship", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "SAFESHIP_CONFIG": str(cwd / "safeship.yaml")},
    )


@pytest.fixture
def stable_and_router() -> Iterator[tuple[ServiceProcess, LocalProxyProcess]]:
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, stable.url) as proxy,
        LoadGenerator(proxy.url, rps=150),
    ):
        yield stable, proxy


def test_a_rollout_records_its_history_in_postgresql_for_another_command_to_explain(
    stable_and_router: tuple[ServiceProcess, LocalProxyProcess],
    postgresql_url: str,
    tmp_path: Path,
) -> None:
    stable, proxy = stable_and_router
    # Plain postgresql://, as users write it: the store picks the psycopg 3 driver.
    store_url = postgresql_url.replace("postgresql+psycopg://", "postgresql://")
    with start_service(
        "127.0.0.1:0", "checkout", "production", "v2", "canary", error_rate=0.1
    ) as canary:
        (tmp_path / "safeship.yaml").write_text(
            f"""
service: checkout
environments:
  production: {{}}
canary: {{hold: 5, warmup: 1, interval: 1, min_requests: 40}}
router: {{type: local, admin_url: "{proxy.admin_url}"}}
provider:
  type: scrape
  canary_url: {canary.metrics_url}
  baseline_url: {stable.metrics_url}
"""
        )
        _set_canary(proxy, canary)
        rolled = _safeship(
            "--store", store_url, "rollout", "--version", "v2", "--json", cwd=tmp_path
        )
    assert rolled.returncode == 1, rolled.stderr
    result = json.loads(rolled.stdout)
    assert (result["outcome"], result["reason"]) == ("rolled_back", "high_error_rate")
    assert not (tmp_path / ".safeship").exists()  # nothing went to the default SQLite file

    explained = _safeship(
        "--store", store_url, "rollout", "explain", result["deployment_id"], cwd=tmp_path
    )
    assert explained.returncode == 0, explained.stderr
    assert "outcome: rolled_back (high_error_rate)" in explained.stdout
    assert "error_rate: fail" in explained.stdout

    store = open_store(postgresql_url)
    try:
        record = store.get_deployment(result["deployment_id"])
        assert record is not None
        assert (record.outcome, record.reason) == ("rolled_back", "high_error_rate")
        assert [d.action for d in store.decisions(record.id)][-1] == "rollback"
        assert store.counters(service="checkout") != []
    finally:
        store.close()


def _set_canary(proxy: LocalProxyProcess, canary: ServiceProcess) -> None:
    """Point the router's canary upstream at the canary started for the test."""
    request = urllib.request.Request(
        f"{proxy.admin_url}/upstreams",
        data=json.dumps({"canary": canary.url}).encode(),
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
