"""Rollouts in a row through the kubernetes router, in every mode, judged by a real Prometheus.

No cluster runs here: the API double holds the routing object (HTTPRoute,
VirtualService, TrafficSplit, or the two Deployments' replica counts), a load
driver sends each request to the slot those weights pick (as the gateway, the
mesh or the Service would), and each slot is a local address where the
pre-rollout hook runs the version it is given: what `kubectl set image` does
to the slot's Deployment, here through `examples/hooks/deploy-sample-service.sh`.
A real Prometheus scrapes both slot addresses, and the provider tells canary
from baseline by the `version` label, so measurement follows the slots
without any URL in the config.

v2 (healthy), v3 (20% errors), v4 (healthy), v5 (20% errors): each healthy one
promoted, each faulty one rolled back, and after each rollout every request
the driver routes is answered by the version that should serve. `make test`
runs one round through the Gateway API; `make soak` every mode, several
rounds (SAFESHIP_SOAK_ROUNDS).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from safeship.demo.monitoring import PrometheusServer, free_port
from safeship.testing_kubernetes import KubernetesApiDouble

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
HOOKS = ROOT / "examples" / "hooks"
NS = "shop"
ROUNDS = int(os.environ.get("SAFESHIP_SOAK_ROUNDS", "1"))

# mode -> (manifest, router settings, slots)
MODES: dict[str, tuple[str, str, tuple[str, str]]] = {
    "gateway-api": ("httproute.yaml", "mode: gateway-api\n  name: checkout",
                    ("checkout-blue", "checkout-green")),
    "istio": ("virtualservice.yaml", "mode: istio\n  name: checkout", ("blue", "green")),
    "smi": ("trafficsplit.yaml", "mode: smi\n  name: checkout",
            ("checkout-blue", "checkout-green")),
    "replicas": ("deployments.yaml", "mode: replicas\n  replicas: 4",
                 ("checkout-blue", "checkout-green")),
}  # fmt: skip

# The slot's process, as `kubectl set image` would roll it: the example hook, told where.
DEPLOY_HOOK = (
    "import json, os, sys; address = json.loads(os.environ['SLOT_ADDRESSES'])"
    "[os.environ['SAFESHIP_CANARY_SLOT']]; "
    "os.execve(sys.argv[1], [sys.argv[1]], {**os.environ, 'SAFESHIP_CANARY_ADDRESS': address})"
)


def slot_weights(api: KubernetesApiDouble, mode: str, slots: tuple[str, str]) -> dict[str, int]:
    """Each slot's share as the routing object (or the replica counts) says now."""
    if mode == "replicas":
        return {s: api.get_object("deployments", s, NS)["spec"]["replicas"] for s in slots}
    if mode == "gateway-api":
        refs = api.get_object("httproutes", "checkout", NS)["spec"]["rules"][0]["backendRefs"]
        return {ref["name"]: ref.get("weight", 1) for ref in refs}
    if mode == "istio":
        routes = api.get_object("virtualservices", "checkout", NS)["spec"]["http"][0]["route"]
        return {r["destination"]["subset"]: r.get("weight", 0) for r in routes}
    backends = api.get_object("trafficsplits", "checkout", NS)["spec"]["backends"]
    return {b["service"]: b["weight"] for b in backends}


class Driver:
    """About `rps` requests a second, each to the slot the weights pick: the data plane."""

    def __init__(self, weights: Callable[[], dict[str, int]], addresses: dict[str, str]) -> None:
        self.weights, self.addresses = weights, addresses
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(8)]

    def pick(self, rng: random.Random) -> str:
        weights = self.weights()
        slots = [s for s in self.addresses if weights.get(s, 0) > 0]
        return rng.choices(slots, weights=[weights[s] for s in slots])[0]

    def answered_by(self, n: int = 40) -> set[str]:
        """Which versions answer the requests routed now (errors name theirs too)."""
        rng = random.Random()
        with httpx.Client(timeout=5) as client:
            return {
                client.get(f"http://{self.addresses[self.pick(rng)]}/").text.split()[-1]
                for _ in range(n)
            }

    def _run(self) -> None:
        rng = random.Random()
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    client.get(f"http://{self.addresses[self.pick(rng)]}/")
                self._stop.wait(8 / 150)

    def __enter__(self) -> Driver:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(prometheus_installed: None) -> Iterator[PrometheusServer]:
    with PrometheusServer(scrape_interval=1.0) as server:
        yield server


def run_hook(script: str, slot: str, version: str, env: dict[str, str]) -> None:
    full = {**os.environ, **env, "SAFESHIP_CANARY_SLOT": slot, "SAFESHIP_VERSION": version,
            "SAFESHIP_SERVICE": "checkout", "SAFESHIP_ENVIRONMENT": "production"}  # fmt: skip
    address = json.loads(env["SLOT_ADDRESSES"])[slot]
    full["SAFESHIP_CANARY_ADDRESS"] = address
    done = subprocess.run([str(HOOKS / script)], env=full, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def write_config(tmp_path: Path, api: KubernetesApiDouble, mode: str, prom: str) -> Path:
    _, settings, slots = MODES[mode]
    config: dict[str, Any] = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 4, "warmup": 1, "interval": 1,
                   "min_requests": 20},
        "provider": {"type": "prometheus"},  # canary and baseline by version
        "prometheus": {"url": prom, "scrape_interval": 1},
        "hooks": {"pre_rollout": [{"command": [sys.executable, "-c", DEPLOY_HOOK,
                                               str(HOOKS / "deploy-sample-service.sh")]}]},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
    }  # fmt: skip
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    router = yaml.safe_load(
        f"type: kubernetes\n  {settings}\n  namespace: {NS}\n  slots: [{', '.join(slots)}]\n"
        f"  kubeconfig: {kubeconfig}".replace("\n  ", "\n")
    )
    config["router"] = router
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# `make test` runs SMI against a double serving only v1alpha4, as SMI's own CRD does (the
# Gateway API rollout is in test_kubernetes_rollout.py); the other modes differ in the
# object they write (unit-tested against the same double) and run here in `make soak`.
IN_TEST = ("smi",) if "SAFESHIP_SOAK_ROUNDS" not in os.environ else tuple(MODES)


@pytest.mark.parametrize("mode", IN_TEST)
def test_healthy_faulty_in_a_row_through_every_kubernetes_mode(
    mode: str, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    manifest, _, slots = MODES[mode]
    addresses = {slot: f"127.0.0.1:{free_port()}" for slot in slots}
    env = {"SLOT_ADDRESSES": json.dumps(addresses), "SAFESHIP_SLOT_DIR": str(tmp_path / "slots"),
           "PYTHON": sys.executable, "PUSHGATEWAY_URL": ""}  # fmt: skip
    with KubernetesApiDouble(token="sequence-token-7c7c7c7c") as api:
        for doc in yaml.safe_load_all((DEPLOY / manifest).read_text()):
            if doc["kind"] == "Deployment":  # replicas mode: all pods on the first slot
                doc["spec"]["replicas"] = 4 if doc["metadata"]["name"] == slots[0] else 0
            if doc["kind"] in ("HTTPRoute", "VirtualService", "TrafficSplit", "Deployment"):
                api.put_object(doc)
        config = write_config(tmp_path, api, mode, prometheus.url)
        try:
            # Versions name the mode, so no test reads another's series in the shared Prometheus.
            run_hook("deploy-sample-service.sh", slots[0], f"v1-{mode}", env)
            prometheus.add_targets(*addresses.values())
            prometheus.wait_for_targets(addresses[slots[0]])
            with Driver(lambda: slot_weights(api, mode, slots), addresses) as driver:
                serving = f"v1-{mode}"
                versions = [f"v{n}-{mode}" for n in range(2, 2 + 4 * ROUNDS)]
                for number, version in enumerate(versions):
                    faulty = number % 2 == 1
                    full = {**os.environ, **env, "SAMPLE_ERROR_RATE": "0.2" if faulty else "0"}
                    started = time.monotonic()
                    run = subprocess.run(
                        [sys.executable, "-m", "safeship", "--config", str(config), "rollout",
                         "--version", version, "--json"],
                        capture_output=True, text=True, timeout=120, check=False, env=full,
                    )  # fmt: skip
                    outcome = json.loads(run.stdout)
                    expected = (1, "rolled_back") if faulty else (0, "promoted")
                    if not faulty:
                        serving = version
                    got, answers = (run.returncode, outcome["outcome"]), driver.answered_by()
                    if (got, answers) != (expected, {serving}):
                        story = subprocess.run(
                            [sys.executable, "-m", "safeship", "--config", str(config),
                             "rollout", "explain", outcome["deployment_id"]],
                            capture_output=True, text=True, timeout=60, check=False,
                        )  # fmt: skip
                        pytest.fail(
                            f"{mode} {version}: {got} in {time.monotonic() - started:.0f}s, "
                            f"answered by {answers}\n{run.stderr}\n{story.stdout}"
                        )
        finally:
            for slot in slots:
                with contextlib.suppress(AssertionError):
                    run_hook("stop-sample-service.sh", slot, "", env)
