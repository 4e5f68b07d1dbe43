"""A crash-looping canary is rolled back as `crash_loop`, never promoted: real processes.

The canary is a sample-service process that dies every few seconds under a
supervisor that starts it again on the same address (as systemd or the
kubelet would), with 3% errors against the stable version's 1%. Every restart
resets its counters and fails the requests in flight, which its own metrics
never show. Once, the provider restarted its window at each reset and the
sequential test compared new counts with old totals: such a canary was
promoted in 5 of 7 runs. Here it goes through the local router and HAProxy
with the scrape provider, and through a real Prometheus scraping the slots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PrometheusServer, free_port
from safeship.demo.rigs import RigKind, RouterRig, router_rig
from safeship.demo.service import ServiceProcess, start_service

pytestmark = pytest.mark.integration

LIFE = 3.0  # seconds each canary process lives before it crashes
FIRST_LIFE = 12.0  # long enough for the CLI to start and pass its preflight


class CrashLoop:
    """A canary that crashes every `LIFE` seconds and is started again where it was."""

    def __init__(self, address: str, version: str, error_rate: float) -> None:
        self.address, self.version, self.error_rate = address, version, error_rate
        self.restarts = 0
        self._lives = 0
        self._stop = threading.Event()
        self._current = self._start(FIRST_LIFE)
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _start(self, life: float) -> ServiceProcess:
        return start_service(
            self.address,
            "checkout",
            "production",
            self.version,
            "canary",
            error_rate=self.error_rate,
            crash_after=life,
            seed=f"life {self._next_life()}",  # each life draws its own errors
        )

    def _next_life(self) -> int:
        self._lives += 1
        return self._lives

    def _supervise(self) -> None:
        while not self._stop.is_set():
            if self._current.returncode is None:
                time.sleep(0.05)
                continue
            self._current.stop()  # reap the dead process and close its pipes
            if self._stop.is_set():
                return
            try:
                self._current = self._start(LIFE)
                self.restarts += 1
            except RuntimeError:
                time.sleep(0.1)  # the port is not free yet: try again

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._current.stop()

    def __enter__(self) -> CrashLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The local router in `make test`, HAProxy too in `make soak`: what hides a crash loop is
# the measurement, not the data plane.
@pytest.fixture(params=["local", "haproxy"] if "SAFESHIP_SOAK_ROUNDS" in os.environ else ["local"])
def rig(request: pytest.FixtureRequest) -> Iterator[RouterRig]:
    kind: RigKind = request.param
    if kind == "haproxy":
        request.getfixturevalue("haproxy_installed")
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with router_rig(kind, addresses) as started:
        yield started


def _rollout(
    tmp_path: Path,
    rig: RouterRig,
    provider: dict[str, Any],
    prometheus: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 40, "warmup": 2, "interval": 2,
                   "min_requests": 40},
        "router": rig.settings.model_dump(mode="json"),
        "provider": provider,
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
        **({"prometheus": prometheus} if prometheus else {}),
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(path), "rollout", "--version", "v2",
         "--json"],
        capture_output=True, text=True, timeout=150, check=False,
        env={**os.environ, "PUSHGATEWAY_URL": ""},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    explain = subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(path), "rollout", "explain",
         outcome["deployment_id"]],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    outcome["explain"] = explain.stdout
    return outcome


def _assert_rolled_back_as_crash_loop(outcome: dict[str, Any], rig: RouterRig) -> None:
    assert (outcome["outcome"], outcome["reason"], outcome["weight"]) == (
        "rolled_back",
        "crash_loop",
        0,
    ), outcome["explain"]
    _assert_answered_by_stable(rig)


def _assert_answered_by_stable(rig: RouterRig) -> None:
    """What users get afterwards: every answer, errors included (v1 has 1%), from v1."""
    answers = {httpx.get(rig.url, timeout=5).text.split()[-1] for _ in range(20)}
    assert answers == {"v1"}


def test_a_crash_looping_canary_is_rolled_back_through_the_router(
    rig: RouterRig, tmp_path: Path
) -> None:
    # As many errors as the stable version: the only thing wrong is that it keeps dying.
    blue, green = rig.slots["blue"], rig.slots["green"]
    with ExitStack() as stack:
        stable = stack.enter_context(
            start_service(blue, "checkout", "production", "v1", "stable", error_rate=0.01)
        )
        canary = stack.enter_context(CrashLoop(green, "v2", error_rate=0.01))
        stack.enter_context(LoadGenerator(rig.url, rps=150))
        outcome = _rollout(tmp_path, rig, _scrape(green, stable))
        assert canary.restarts >= 2
        _assert_rolled_back_as_crash_loop(outcome, rig)


def test_a_restarting_canary_with_more_errors_is_never_promoted(tmp_path: Path) -> None:
    # 3% errors against 1%, restarting every few seconds: once promoted in 5 of 7 runs,
    # because each restart hid the errors that followed it.
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with ExitStack() as stack:
        rig = stack.enter_context(router_rig("local", addresses))
        stable = stack.enter_context(
            start_service(
                addresses["blue"], "checkout", "production", "v1", "stable", error_rate=0.01
            )
        )
        stack.enter_context(CrashLoop(addresses["green"], "v2", error_rate=0.03))
        stack.enter_context(LoadGenerator(rig.url, rps=150))
        outcome = _rollout(tmp_path, rig, _scrape(addresses["green"], stable))
        assert (outcome["outcome"], outcome["weight"]) == ("rolled_back", 0), outcome["explain"]
        assert outcome["reason"] in ("crash_loop", "high_error_rate")
        _assert_answered_by_stable(rig)


def test_a_crash_looping_canary_is_rolled_back_through_prometheus(
    prometheus_installed: None, tmp_path: Path
) -> None:
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with ExitStack() as stack:
        server = stack.enter_context(PrometheusServer(scrape_interval=1.0))
        rig = stack.enter_context(router_rig("local", addresses))
        stack.enter_context(
            start_service(
                addresses["blue"], "checkout", "production", "v1", "stable", error_rate=0.01
            )
        )
        stack.enter_context(CrashLoop(addresses["green"], "v2", error_rate=0.01))
        server.add_targets(addresses["blue"], addresses["green"])
        server.wait_for_targets(addresses["blue"], addresses["green"])
        stack.enter_context(LoadGenerator(rig.url, rps=150))
        provider = {"type": "prometheus", "labels": {"service": "checkout"}}
        outcome = _rollout(
            tmp_path, rig, provider, prometheus={"url": server.url, "scrape_interval": 1}
        )
        _assert_rolled_back_as_crash_loop(outcome, rig)


def _scrape(canary_address: str, stable: ServiceProcess) -> dict[str, Any]:
    return {
        "type": "scrape",
        "canary_url": f"http://{canary_address}/metrics",
        "baseline_url": stable.metrics_url,
    }
