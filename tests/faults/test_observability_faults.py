"""Grafana and the Pushgateway failing during a rollout: views of it, never reasons to stop it.

Real sample services behind the local router under load, `safeship rollout
--json` from a config that names Grafana (the API double, or `FaultProxy` in
front of it answering after the client's timeout) and a Pushgateway that was
started and stopped (its port now refuses). Policy: the rollout's outcome,
exit code and router weight are exactly what they would have been; each
failure is one `warning:` line on stderr saying what failed and where, never
the token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.faults.conftest import FaultProxy, safeship

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PushgatewayServer
from safeship.demo.service import start_service
from safeship.routers.local import LocalRouter, start_local_proxy
from safeship.testing import serves_everything
from safeship.testing_grafana import GrafanaDouble

pytestmark = pytest.mark.integration


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


@pytest.fixture
def stack() -> Iterator[Callable[[float], Stack]]:
    """Stable v1 and canary v2 (with the given error rate) behind the local router, loaded."""
    with ExitStack() as stack:

        def start(canary_error_rate: float) -> Stack:
            stable = stack.enter_context(
                start_service("127.0.0.1:0", "checkout", "production", "v1", "stable")
            )
            canary = stack.enter_context(
                start_service(
                    "127.0.0.1:0",
                    "checkout",
                    "production",
                    "v2",
                    "canary",
                    error_rate=canary_error_rate,
                )
            )
            proxy = stack.enter_context(
                start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url)
            )
            stack.enter_context(LoadGenerator(proxy.url, rps=150))
            return Stack(proxy.admin_url, canary.metrics_url, stable.metrics_url)

        yield start


def write_config(stack: Stack, tmp_path: Path, **extra: Any) -> Path:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [50, 100], "hold": 2, "warmup": 0.5, "interval": 0.5,
                   "min_requests": 10},
        "router": {"type": "local", "admin_url": stack.admin_url},
        "provider": {"type": "scrape", "canary_url": stack.canary_metrics,
                     "baseline_url": stack.stable_metrics},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
        **extra,
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def grafana_settings(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "token": {"env": "GRAFANA_TOKEN"},
        "timeout": 0.5,
        "retries": 0,
        "annotate": ["safeship-deployment-overview"],
    }


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_grafana_answering_500_warns_and_the_rollout_still_promotes(
    stack: Callable[[float], Stack], tmp_path: Path
) -> None:
    rig = stack(0.0)
    with GrafanaDouble() as grafana:
        grafana.fail_next(1000, status=500)
        config = write_config(rig, tmp_path, grafana=grafana_settings(grafana.url))
        done = safeship(
            config, "rollout", "--version", "v2", "--json", env={"GRAFANA_TOKEN": grafana.token}
        )
        token = grafana.token
        calls = [r for r in grafana.requests if r[1] != "/api/health"]
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["weight"]) == ("promoted", 100)
    assert rig.promoted()
    assert calls  # Grafana was asked, and failed
    said = warnings(done.stderr)
    assert said, done.stderr
    assert any("500" in w for w in said), said
    assert any(grafana_host(grafana.url) in w for w in said), said
    assert token not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def grafana_host(url: str) -> str:
    return url.removeprefix("http://").rstrip("/")


def test_grafana_timing_out_warns_and_a_faulty_canary_is_still_rolled_back(
    stack: Callable[[float], Stack], tmp_path: Path
) -> None:
    rig = stack(0.2)
    with GrafanaDouble() as grafana, FaultProxy(grafana.url, delay=2.0) as proxy:
        proxy.set_mode("slow")
        config = write_config(rig, tmp_path, grafana=grafana_settings(proxy.url))
        done = safeship(
            config, "rollout", "--version", "v2", "--json", env={"GRAFANA_TOKEN": grafana.token}
        )
        token = grafana.token
        slow = proxy.count("slow")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["reason"], result["weight"]) == (
        "rolled_back",
        "high_error_rate",
        0,
    )
    assert rig.weight() == 0
    assert slow > 0
    said = warnings(done.stderr)
    assert said, done.stderr
    assert all(grafana_host(proxy.url) in w for w in said), said
    assert token not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_pushgateway_down_warns_and_reports_metrics_not_pushed(
    stack: Callable[[float], Stack], tmp_path: Path, pushgateway_installed: None
) -> None:
    rig = stack(0.0)
    with PushgatewayServer() as pushgateway:
        url = pushgateway.url
    # Stopped: its port now refuses connections.
    config = write_config(rig, tmp_path)
    done = safeship(config, "rollout", "--version", "v2", "--json", env={"PUSHGATEWAY_URL": url})
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["weight"], result["metrics_pushed"]) == (
        "promoted",
        100,
        False,
    )
    assert rig.promoted()
    said = warnings(done.stderr)
    # The push when the rollout starts and the one at its end both fail: said once.
    assert len([w for w in said if "could not push metrics to the Pushgateway" in w]) == 1, said
    assert all(url.removeprefix("http://") in w for w in said), said
    assert "Traceback" not in done.stderr
