"""`safeship rollout` with the kubernetes router against the API double.

No API server and no gateway run here, so nothing would steer traffic by the
HTTPRoute (or spread it over pods): a small load driver does what the gateway
(or the Service) would, sending each request to the slot the weights (or the
replica counts) pick, read from the double as they are now. Two real sample
services serve the slots and the scrape provider reads their /metrics, so the
rollout judges real traffic that follows what the router wrote.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from safeship.demo.service import ServiceProcess, start_service
from safeship.testing_kubernetes import KubernetesApiDouble

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
STABLE, CANARY = "checkout-blue", "checkout-green"
NS = "shop"


def route_weights(api: KubernetesApiDouble) -> dict[str, int]:
    refs = api.get_object("httproutes", "checkout", NS)["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: ref.get("weight", 1) for ref in refs}


def replica_weights(api: KubernetesApiDouble) -> dict[str, int]:
    return {d: api.get_object("deployments", d, NS)["spec"]["replicas"] for d in (STABLE, CANARY)}


class WeightFollowingLoad:
    """Sends about `rps` requests a second, each to the slot the double's weights pick."""

    def __init__(
        self,
        weights: Callable[[], dict[str, int]],
        urls: dict[str, str],
        rps: float = 300,
        workers: int = 16,
    ) -> None:
        self.weights = weights
        self.urls = urls
        self.pause = workers / rps
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> WeightFollowingLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _pick(self, rng: random.Random) -> str:
        weights = {slot: w for slot, w in self.weights().items() if slot in self.urls}
        return rng.choices(list(weights), weights=list(weights.values()))[0]

    def _run(self) -> None:
        rng = random.Random()
        with httpx.Client(timeout=5) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                slot = self._pick(rng)
                # The service's own metrics count what it answered; a lost request is no news.
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.urls[slot])
                due += self.pause  # a fixed schedule, so the services' latency does not slow it
                self._stop.wait(max(0.0, due - time.monotonic()))


@pytest.fixture
def api() -> Iterator[KubernetesApiDouble]:
    with KubernetesApiDouble(token="integration-token-5a5a5a5a") as double:
        for name in ("httproute.yaml", "deployments.yaml"):
            for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
                if doc["kind"] in ("HTTPRoute", "Deployment"):
                    double.put_object(doc)
        yield double


GATEWAY_API = "mode: gateway-api\n  name: checkout"


def write_config(
    tmp_path: Path,
    api: KubernetesApiDouble,
    stable: ServiceProcess,
    canary: ServiceProcess,
    mode: str,
) -> Path:
    config = tmp_path / "safeship.yaml"
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", namespace="shop")
    config.write_text(
        f"""
service: checkout
environments:
  production: {{}}
canary:
  hold: 5
  warmup: 1
  interval: 1
  min_requests: 40
router:
  type: kubernetes
  {mode}
  namespace: shop
  slots: [{STABLE}, {CANARY}]
  kubeconfig: {kubeconfig}
provider:
  type: scrape
  canary_url: {canary.metrics_url}
  baseline_url: {stable.metrics_url}
store:
  url: sqlite:///{tmp_path / "history.db"}
"""
    )
    return config


def rollout(config: Path) -> tuple[int, dict[str, object], str]:
    args = ["--config", str(config), "rollout", "--version", "v2", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "safeship", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def canary_weights(api: KubernetesApiDouble) -> list[int]:
    """The canary slot's weight after each write the router made to the HTTPRoute."""
    weights = []
    for route in api.writes_to("httproutes", "checkout"):
        refs = route["spec"]["rules"][0]["backendRefs"]
        weights.append(next(ref["weight"] for ref in refs if ref["name"] == CANARY))
    return weights


def run(
    tmp_path: Path, api: KubernetesApiDouble, error_rate: float, mode: str = GATEWAY_API
) -> tuple[int, dict[str, object]]:
    follow = route_weights if "gateway-api" in mode else replica_weights
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service(
            "127.0.0.1:0", "checkout", "production", "v2", "canary", error_rate=error_rate
        ) as canary,
        WeightFollowingLoad(lambda: follow(api), {STABLE: stable.url, CANARY: canary.url}),
    ):
        started = time.monotonic()
        code, result, stderr = rollout(write_config(tmp_path, api, stable, canary, mode))
        assert time.monotonic() - started < 60, stderr
    return code, result


def test_healthy_canary_moves_the_httproute_to_100_and_becomes_stable(
    tmp_path: Path, api: KubernetesApiDouble
) -> None:
    code, result = run(tmp_path, api, error_rate=0.0)
    assert (code, result["outcome"]) == (0, "promoted"), json.dumps(result)
    # 10 -> 50, then the promotion: 100 and the canary recorded as stable, in one write.
    assert canary_weights(api) == [10, 50, 100]
    route = api.get_object("httproutes", "checkout", NS)
    assert route["metadata"]["annotations"]["safeship.dev/stable-slot"] == CANARY


def test_faulty_canary_ends_back_at_zero(tmp_path: Path, api: KubernetesApiDouble) -> None:
    code, result = run(tmp_path, api, error_rate=0.3)
    assert (code, result["outcome"], result["reason"]) == (1, "rolled_back", "high_error_rate")
    assert canary_weights(api) == [10, 0]
    route = api.get_object("httproutes", "checkout", NS)
    assert route["metadata"]["annotations"]["safeship.dev/stable-slot"] == STABLE


def test_replicas_mode_confirms_the_achievable_weights(
    tmp_path: Path, api: KubernetesApiDouble
) -> None:
    # 3 pods: 10% can only be 1 pod (33%), 50% is 2 pods (67%), 100% all 3.
    code, result = run(tmp_path, api, 0.0, mode="mode: replicas\n  replicas: 3")
    assert (code, result["outcome"]) == (0, "promoted"), json.dumps(result)
    canary_pods = [
        w.object["spec"]["replicas"] for w in api.writes if w.path.endswith(f"{CANARY}/scale")
    ]
    assert canary_pods == [1, 2, 3]
    story = result["story"]
    assert isinstance(story, dict)
    confirmed = [s["weight"] for s in story["states"] if s["phase"] == "holding"]
    assert sorted(set(confirmed)) == [33, 67]
    blue = api.get_object("deployments", STABLE, NS)
    assert blue["metadata"]["annotations"]["safeship.dev/stable-slot"] == CANARY
