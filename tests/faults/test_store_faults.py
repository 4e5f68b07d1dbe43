"""The history store failing: locked, unwritable, or its PostgreSQL server stopped.

Policy: no decision is taken, and no traffic moves, without its record.

* Before anything changed (the store cannot be opened, or its first writes
  fail: a SQLite file locked by another process past the busy timeout, a path
  that cannot be created): exit 3, the message names the store and says no
  traffic moved; the router weight is still 0 and nothing is recorded.
* Mid-rollout (a write fails past the busy timeout, or the PostgreSQL server is
  gone): the rollout stops where its last record says, like an interrupted
  process: exit 1, the message says what failed, where, the last recorded phase
  and weight, that the router keeps its weight, and to run `safeship rollout
  resume ID` (or `abort ID`) once the store answers. Nothing is promoted; the
  stored state is resumable, and resume finishes the rollout with every
  decision recorded.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.faults.conftest import (
    rollout_reaches,
    safeship,
    start_safeship,
    stored,
    wait_for,
)

from safeship.demo.load import LoadGenerator
from safeship.demo.postgres_server import PostgresServer
from safeship.demo.service import start_service
from safeship.routers.local import LocalRouter, start_local_proxy
from safeship.testing import serves_everything

pytestmark = pytest.mark.integration

# Holds SQLite's write lock from another process: `BEGIN EXCLUSIVE`, then sleeps.
LOCKER = (
    "import sqlite3, sys, time\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN EXCLUSIVE')\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)
BUSY_TIMEOUT = 5.0  # safeship.store.sql's SQLite busy timeout


@dataclass
class Stack:
    admin_url: str
    canary_metrics: str
    stable_metrics: str

    def weight(self) -> int:
        router = LocalRouter(self.admin_url)
        try:
            return router.get_weight()
        finally:
            router.close()

    def promoted(self) -> bool:
        """All traffic on the canary's process: its slot is the stable one, at weight 0."""
        return serves_everything(self.admin_url, self.canary_metrics)

    def config(self, tmp_path: Path, store_url: str) -> Path:
        config = {
            "service": "checkout",
            "environments": {"production": {}},
            "canary": {"steps": [10, 100], "hold": 2, "warmup": 0.5, "interval": 0.5,
                       "min_requests": 10},
            "router": {"type": "local", "admin_url": self.admin_url},
            "provider": {"type": "scrape", "canary_url": self.canary_metrics,
                         "baseline_url": self.stable_metrics},
            "store": {"url": store_url},
        }  # fmt: skip
        path = tmp_path / "safeship.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def stack() -> Iterator[Stack]:
    with ExitStack() as stack:
        stable = stack.enter_context(
            start_service("127.0.0.1:0", "checkout", "production", "v1", "stable")
        )
        canary = stack.enter_context(
            start_service("127.0.0.1:0", "checkout", "production", "v2", "canary")
        )
        proxy = stack.enter_context(
            start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url)
        )
        stack.enter_context(LoadGenerator(proxy.url, rps=150))
        yield Stack(proxy.admin_url, canary.metrics_url, stable.metrics_url)


@pytest.fixture
def lock_sqlite() -> Iterator[Callable[[Path, float], None]]:
    """Take SQLite's write lock on a file from a child process for `seconds`."""
    children: list[subprocess.Popen[str]] = []

    def lock(path: Path, seconds: float) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"

    yield lock
    for child in children:
        child.kill()
        child.communicate()


def test_sqlite_locked_at_start_exits_3_before_any_traffic_moves(
    stack: Stack, tmp_path: Path, lock_sqlite: Callable[[Path, float], None]
) -> None:
    db = tmp_path / "history.db"
    config = stack.config(tmp_path, f"sqlite:///{db}")
    assert safeship(config, "rollout", "list").returncode == 0  # the file exists, migrated
    lock_sqlite(db, BUSY_TIMEOUT + 10)
    done = safeship(config, "rollout", "--version", "v2", "--deployment-id", "locked")
    assert done.returncode == 3, done.stdout + done.stderr
    assert str(db) in done.stderr  # where
    assert "database is locked" in done.stderr  # what
    assert "rollout locked not started: no traffic moved" in done.stderr
    assert "Traceback" not in done.stderr
    assert stack.weight() == 0


def test_sqlite_locked_mid_hold_stops_where_recorded_and_resume_finishes(
    stack: Stack, tmp_path: Path, lock_sqlite: Callable[[Path, float], None]
) -> None:
    db = tmp_path / "history.db"
    store_url = f"sqlite:///{db}"
    config = stack.config(tmp_path, store_url)
    process = start_safeship(config, "rollout", "--version", "v2", "--deployment-id", "mid")
    try:
        wait_for(
            "step 1 (10%) holding",
            rollout_reaches(store_url, "mid", lambda s, _: s["phase"] == "holding"),
        )
        # Longer than the busy timeout, and than the rest of the hold.
        lock_sqlite(db, BUSY_TIMEOUT + 1.5)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, stderr
    assert "rollout mid stopped: history store" in stderr
    assert str(db) in stderr
    assert "database is locked" in stderr
    assert "Last recorded: holding at 10%" in stderr
    assert "run `safeship rollout resume mid`" in stderr
    assert "Traceback" not in stderr
    # No record, no move: traffic stays at the recorded 10%, nothing promoted.
    assert stack.weight() == 10
    wait_for("the lock to go", lambda: safeship(config, "rollout", "list").returncode == 0)
    state, decisions = stored(store_url, "mid")
    assert state is not None
    assert (state["phase"], state["weight"]) == ("holding", 10)
    assert all(d.action not in ("advance", "promote") for d in decisions)

    resumed = safeship(config, "rollout", "resume", "mid")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "promoted at weight 100%" in resumed.stdout
    assert stack.promoted()
    _, decisions = stored(store_url, "mid")
    advance = next(d for d in decisions if d.action == "advance")
    assert advance.result == "pass"
    assert any(d.action == "resume" for d in decisions if d.seq < advance.seq)


def test_store_path_that_cannot_be_created_exits_3_before_any_traffic_moves(
    stack: Stack, tmp_path: Path
) -> None:
    # A regular file where the store's directory should be: fails for root too.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = stack.config(tmp_path, f"sqlite:///{blocker}/history.db")
    done = safeship(config, "rollout", "--version", "v2")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot create directory {blocker}" in done.stderr
    assert "nothing changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert stack.weight() == 0


@pytest.fixture
def postgres(postgres_installed: None) -> Iterator[PostgresServer]:
    """A PostgreSQL of its own: this test stops it."""
    with PostgresServer() as server:
        yield server


def test_postgresql_stopped_mid_rollout_stops_where_recorded(
    stack: Stack, tmp_path: Path, postgres: PostgresServer
) -> None:
    store_url = postgres.url
    config = stack.config(tmp_path, store_url)
    process = start_safeship(config, "rollout", "--version", "v2", "--deployment-id", "pg")
    try:
        wait_for(
            "step 1 (10%) holding",
            rollout_reaches(store_url, "pg", lambda s, _: s["phase"] == "holding"),
        )
        postgres.stop()
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, stderr
    assert "rollout pg stopped: history store postgresql" in stderr
    assert f"127.0.0.1:{postgres.port}" in stderr  # where
    assert "Last recorded: holding at 10%" in stderr
    assert "run `safeship rollout resume pg`" in stderr
    assert "Traceback" not in stderr
    assert stack.weight() == 10  # held as recorded; never promoted without a record
