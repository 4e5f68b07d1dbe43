"""kill -9 a real rollout at random moments, resume it, and check nothing was left half done.

Each point starts a fresh stack (stable v1 and canary v2 sample services, the
router's data plane in front, 150 requests/s of load), runs `safeship rollout`
as a child process, kills it with SIGKILL after a random delay (seeded, so a
failing point can be rerun), then runs `safeship rollout resume` until the
rollout has ended. Even points roll out a healthy canary, odd points a faulty
one (30% errors). After each point:

* the rollout has an outcome, and the history agrees with `resume`'s answer (a
  resumed rollout that pauses for lack of data, on a loaded machine, is aborted:
  a person's call);
* traffic is where the outcome says: every request is answered by v2 after a
  promotion, by v1 after a rollback (and by v1 when the kill came before the
  rollout was even recorded); a faulty canary is never promoted;
* decision records are numbered 1..n with no gap (none lost; the store's
  unique key refuses duplicates).

`make test` runs 2 points per router; `make soak` runs 50 (SAFESHIP_SOAK_POINTS).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import free_port
from safeship.demo.rigs import RigKind, router_rig
from safeship.demo.service import start_service
from safeship.store import open_store

pytestmark = pytest.mark.integration

POINTS = int(os.environ.get("SAFESHIP_SOAK_POINTS", "2"))
SEED = int(os.environ.get("SAFESHIP_SOAK_SEED", "7"))
# A healthy rollout takes ~5 s here (two 2 s holds plus start-up), a faulty one is rolled
# back ~2 s after the start: kills land anywhere in either.
# The CLI takes ~1 s to start: the windows begin before it has recorded anything.
KILL_WINDOW = {False: (0.5, 7.0), True: (0.5, 3.0)}


@dataclass
class Stack:
    url: str
    router: dict[str, Any]
    stable_metrics: str
    canary_metrics: str


@contextmanager
def stack(kind: RigKind, faulty: bool) -> Iterator[Stack]:
    with ExitStack() as es:
        addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
        v1 = es.enter_context(
            start_service(addresses["blue"], "checkout", "production", "v1", "stable")
        )
        v2 = es.enter_context(
            start_service(
                addresses["green"],
                "checkout",
                "production",
                "v2",
                "canary",
                error_rate=0.3 if faulty else 0.0,
            )
        )
        rig = es.enter_context(router_rig(kind, addresses))
        es.enter_context(LoadGenerator(rig.url, rps=200))
        settings = rig.settings.model_dump(mode="json")
        yield Stack(rig.url, settings, v1.metrics_url, v2.metrics_url)


def write_config(tmp_path: Path, s: Stack) -> Path:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 3, "min_hold": 3, "warmup": 0.5,
                   "interval": 0.5, "min_requests": 20},
        "router": s.router,
        "provider": {"type": "scrape", "canary_url": s.canary_metrics,
                     "baseline_url": s.stable_metrics},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def safeship(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "safeship", "--config", str(config), *args]


ENV = {**os.environ, "PUSHGATEWAY_URL": ""}


def answered_by(url: str, n: int = 30) -> Counter[str]:
    with httpx.Client(trust_env=False, timeout=5) as client:
        return Counter(client.get(url).text.strip() for _ in range(n))


def run_point(kind: RigKind, point: int, tmp_path: Path) -> dict[str, Any]:
    rng = random.Random(f"{SEED}-{kind}-{point}")
    faulty = point % 2 == 1
    delay = rng.uniform(*KILL_WINDOW[faulty])
    deployment = f"soak-{kind}-{point}"
    with stack(kind, faulty) as s:
        config = write_config(tmp_path, s)
        child = subprocess.Popen(
            safeship(config, "rollout", "--version", "v2", "--deployment-id", deployment),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        time.sleep(delay)
        killed = child.poll() is None
        if killed:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
        try:
            record = store.get_deployment(deployment)
            resumes = paused = 0
            outcome = record.outcome if record else None
            while record is not None and outcome is None:
                resumes += 1
                assert resumes <= 3, f"{deployment}: still unfinished after {resumes - 1} resumes"
                done = subprocess.run(
                    safeship(config, "rollout", "resume", deployment, "--json"),
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env=ENV,
                    check=False,
                )
                assert done.returncode in (0, 1, 4), done.stdout + done.stderr
                answer = json.loads(done.stdout)
                if answer["outcome"] == "paused":
                    # Not enough data (a loaded machine): safe, and a person's call. Abort.
                    paused += 1
                    done = subprocess.run(
                        safeship(config, "rollout", "abort", deployment, "--json"),
                        capture_output=True, text=True, timeout=120, env=ENV, check=False,
                    )  # fmt: skip
                    assert done.returncode == 0, done.stdout + done.stderr
                    answer = json.loads(done.stdout)
                record = store.get_deployment(deployment)
                assert record is not None
                outcome = record.outcome
                assert answer["outcome"] == outcome, (answer, outcome)
            decisions = [d.seq for d in store.decisions(deployment)] if record else []
            states = len(store.state_history(deployment)) if record else 0
        finally:
            store.close()
        served = answered_by(s.url)
    expected = {"promoted": "ok v2", "rolled_back": "ok v1", "aborted": "ok v1", None: "ok v1"}[
        outcome
    ]
    assert served == Counter({expected: 30}), (deployment, outcome, served)
    assert not (faulty and outcome == "promoted"), deployment
    assert decisions == list(range(1, len(decisions) + 1)), decisions
    return {
        "point": point,
        "faulty": faulty,
        "kill_after": round(delay, 2),
        "killed": killed,
        "recorded": record is not None,
        "resumes": resumes,
        "paused": paused,
        "outcome": outcome,
        "decisions": len(decisions),
        "states": states,
    }


@pytest.mark.timeout(120 + 40 * POINTS)  # ~10 s a point; `make soak` runs 50
@pytest.mark.parametrize("kind", ["local", "haproxy"])
def test_kill_9_then_resume_leaves_traffic_where_the_record_says(
    kind: RigKind, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    if kind == "haproxy":
        request.getfixturevalue("haproxy_installed")
    results = [
        run_point(kind, point, tmp_path_factory.mktemp(f"{kind}-{point}"))
        for point in range(POINTS)
    ]
    outcomes = Counter(str(r["outcome"]) for r in results)
    killed = sum(r["killed"] for r in results)
    print(
        f"\n{kind}: {len(results)}/{POINTS} points passed; killed mid-rollout {killed}; "
        f"outcomes {dict(outcomes)}; resumes {sum(r['resumes'] for r in results)}; "
        f"paused for lack of data then aborted {sum(r['paused'] for r in results)}"
    )
    for r in results:
        print(f"  {json.dumps(r)}")


def test_one_rollout_at_a_time_and_abort_always_works(tmp_path: Path) -> None:
    """A second rollout exits 5 naming the first; a killed one still blocks until ended."""
    with stack("local", faulty=False) as s:
        config = write_config(tmp_path, s)
        first = subprocess.Popen(
            safeship(config, "rollout", "--version", "v2", "--deployment-id", "first"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        try:
            deadline = time.monotonic() + 20
            while (
                "holding"
                not in subprocess.run(
                    safeship(config, "rollout", "status"), capture_output=True, text=True, env=ENV
                ).stdout
            ):
                assert time.monotonic() < deadline, "the first rollout never started holding"
                time.sleep(0.1)
            second = subprocess.run(
                safeship(config, "rollout", "--version", "v3"),
                capture_output=True, text=True, env=ENV, check=False,
            )  # fmt: skip
            assert second.returncode == 5, second.stdout + second.stderr
            assert "checkout/production is being rolled out by rollout first" in second.stderr
            assert f"pid {first.pid}" in second.stderr
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        # Its process is gone, but the rollout is unfinished: still one at a time.
        third = subprocess.run(
            safeship(config, "rollout", "--version", "v3"),
            capture_output=True, text=True, env=ENV, check=False,
        )  # fmt: skip
        assert third.returncode == 5, third.stdout + third.stderr
        assert "unfinished rollout first of v2" in third.stderr
        aborted = subprocess.run(
            safeship(config, "rollout", "abort", "first", "--json"),
            capture_output=True, text=True, env=ENV, check=False,
        )  # fmt: skip
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr
        assert json.loads(aborted.stdout)["outcome"] == "aborted"
        assert answered_by(s.url) == Counter({"ok v1": 30})
