"""Prometheus failing in the middle of a canary's analysis, through a fault-injecting proxy.

A real Prometheus 2.42 scrapes real sample services (stable and canary) behind
the local router under load; safeship (the CLI, `rollout --json`) reads
Prometheus through `FaultProxy`, which the test switches to a fault once the
rollout has taken its first verdict on real data. Policy: provider errors count
consecutively; past `limits.consecutive_errors` the rollout applies
`limits.on_error` (default rollback, reason provider_error, weight 0; `pause`:
exit 4 with the weight held). A fault that clears first only delays the
verdict, and a step advances only on a passing verdict over real data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.faults.conftest import (
    FaultProxy,
    first_verdict,
    rollout_reaches,
    safeship,
    stored,
    wait_for,
)

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PrometheusServer
from safeship.demo.service import ServiceProcess, start_service
from safeship.routers.local import LocalProxyProcess, LocalRouter, start_local_proxy
from safeship.testing import serves_everything

pytestmark = pytest.mark.integration

TIMEOUT = 0.5  # the Prometheus client's per-request timeout here; `slow` answers after 2 s


@dataclass
class Services:
    prometheus: PrometheusServer
    stable: ServiceProcess
    canary: ServiceProcess


@pytest.fixture(scope="module")
def services(prometheus_installed: None) -> Iterator[Services]:
    with (
        PrometheusServer(scrape_interval=1.0) as prometheus,
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary,
    ):
        addresses = [s.url.removeprefix("http://") for s in (stable, canary)]
        prometheus.add_targets(*addresses)
        prometheus.wait_for_targets(*addresses)
        yield Services(prometheus, stable, canary)


@dataclass
class Rig:
    services: Services
    proxy: FaultProxy
    router: LocalProxyProcess
    tmp_path: Path

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'history.db'}"

    def weight(self) -> int:
        router = LocalRouter(self.router.admin_url)
        try:
            return router.get_weight()
        finally:
            router.close()

    def promoted(self) -> bool:
        """All traffic on the canary's process: its slot is the stable one, at weight 0."""
        return serves_everything(self.router.admin_url, self.services.canary.url)

    def config(self, **limits: Any) -> Path:
        hold = limits.pop("hold", 8)
        config = {
            "service": "checkout",
            "environments": {"production": {}},
            "canary": {"steps": [50, 100], "hold": hold, "warmup": 0.5, "interval": 0.5,
                       "min_requests": 10, "limits": {"consecutive_errors": 3, **limits}},
            "router": {"type": "local", "admin_url": self.router.admin_url},
            "provider": {"type": "prometheus"},
            "prometheus": {"url": self.proxy.url, "timeout": TIMEOUT, "retries": 1},
            "store": {"url": self.store_url},
        }  # fmt: skip
        path = self.tmp_path / "safeship.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def rig(services: Services, tmp_path: Path) -> Iterator[Rig]:
    with (
        FaultProxy(services.prometheus.url) as proxy,
        start_local_proxy(
            "127.0.0.1:0", "127.0.0.1:0", services.stable.url, services.canary.url
        ) as router,
        LoadGenerator(router.url, rps=100),
    ):
        yield Rig(services, proxy, router, tmp_path)


def run_with_fault(
    rig: Rig, config: Path, deployment_id: str, mode: str, *, clear_after_errors: int = 0
) -> dict[str, Any]:
    """Run the rollout; switch the proxy to `mode` after its first verdict (and back to
    `pass` after `clear_after_errors` error verdicts, if given). Returns the CLI's JSON
    result with `returncode`, `stderr` and `decisions` added."""
    problems: list[BaseException] = []

    def inject() -> None:
        try:
            wait_for(
                "the first verdict", rollout_reaches(rig.store_url, deployment_id, first_verdict)
            )
            rig.proxy.set_mode(mode)
            if clear_after_errors:
                wait_for(
                    f"{clear_after_errors} error verdict(s)",
                    rollout_reaches(
                        rig.store_url,
                        deployment_id,
                        lambda _, ds: sum(d.result == "error" for d in ds) >= clear_after_errors,
                    ),
                )
                rig.proxy.set_mode("pass")
        except BaseException as exc:
            problems.append(exc)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    done = safeship(
        config, "rollout", "--version", "v2", "--deployment-id", deployment_id, "--json"
    )
    injector.join(5)
    assert not problems, problems
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    _, decisions = stored(rig.store_url, deployment_id)
    return result | {"returncode": done.returncode, "stderr": done.stderr, "decisions": decisions}


def never_promoted_after_an_error(decisions: list[Any]) -> None:
    """No step advanced, and nothing was promoted, on anything but a passing verdict."""
    for d in decisions:
        if d.action in ("advance", "promote") and d.result != "manual":
            assert d.result == "pass", (d.action, d.result, d.reason)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("refuse", "unreachable"),
        ("slow", f"no answer within {TIMEOUT:g}s"),
        ("garbage-html", "not JSON"),
        ("garbage-json", "not JSON"),
        ("error-envelope", "too many samples"),
        ("http500", "HTTP 500"),
    ],
)
def test_prometheus_fault_mid_analysis_rolls_back_after_consecutive_errors(
    rig: Rig, mode: str, says: str
) -> None:
    result = run_with_fault(rig, rig.config(), f"prom-{mode}", mode)
    assert result["returncode"] == 1, result["stderr"]
    assert (result["outcome"], result["reason"], result["weight"]) == (
        "rolled_back",
        "provider_error",
        0,
    )
    assert rig.weight() == 0
    assert rig.proxy.count(mode) > 0
    verdicts = [d for d in result["decisions"] if "verdict" in d.inputs]
    assert verdicts[0].result != "error"  # analysis had started on real data
    assert [d.result for d in verdicts[-3:]] == ["error"] * 3
    rollback = verdicts[-1]
    assert rollback.action == "rollback"
    assert rollback.inputs["counters"]["consecutive_errors"] == 3
    assert says in rollback.reason, rollback.reason
    # Where: the Prometheus address, or for a PromQL error the query it refused.
    where = "(query: sum(" if mode == "error-envelope" else rig.proxy.url.removeprefix("http://")
    assert where in rollback.reason
    assert result["detail"].startswith("3 consecutive provider errors (limit 3)"), result["detail"]
    assert says in result["detail"]
    never_promoted_after_an_error(result["decisions"])
    assert all(d.action != "promote" for d in result["decisions"])


def test_prometheus_down_with_on_error_pause_pauses_and_holds_the_weight(rig: Rig) -> None:
    result = run_with_fault(rig, rig.config(on_error="pause"), "prom-pause", "refuse")
    assert result["returncode"] == 4, result["stderr"]
    assert (result["outcome"], result["phase"], result["reason"], result["weight"]) == (
        "paused",
        "paused",
        "provider_error",
        50,
    )
    assert rig.weight() == 50  # held for a person, not promoted and not dropped
    state, decisions = stored(rig.store_url, "prom-pause")
    assert state is not None
    assert state["phase"] == "paused"
    never_promoted_after_an_error(decisions)
    assert [d.result for d in decisions if "verdict" in d.inputs][-3:] == ["error"] * 3


def test_a_fault_that_clears_before_the_limit_only_delays_the_verdict(rig: Rig) -> None:
    result = run_with_fault(
        rig, rig.config(hold=4), "prom-blip", "garbage-html", clear_after_errors=1
    )
    assert result["returncode"] == 0, result["stderr"] + json.dumps(result["story"])[:2000]
    assert (result["outcome"], result["weight"]) == ("promoted", 100)
    assert rig.promoted()
    decisions = result["decisions"]
    results = [d.result for d in decisions if "verdict" in d.inputs]
    assert "error" in results
    first_error = results.index("error")
    assert results[first_error + 1 :].count("error") < 3  # never reached the limit
    never_promoted_after_an_error(decisions)
    # The step advanced on a passing verdict over real data taken after the fault cleared.
    advance = next(d for d in decisions if d.action == "advance")
    assert advance.seq > next(d.seq for d in decisions if d.result == "error")
    samples = advance.inputs["verdict"]["samples"]
    assert samples["canary_requests"] >= 10
    assert samples["baseline_requests"] >= 10
