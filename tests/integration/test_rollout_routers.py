"""Rollouts in a row, as a user runs them week after week, through every router's data plane.

The pre-rollout hook is the example one, `examples/hooks/deploy-sample-service.sh`:
it starts each new version of the sample service at the address it is told
(`SAFESHIP_CANARY_ADDRESS`), stopping what ran there; the on-rollback hook
stops it again. The scrape provider is left at its defaults, templates over
the slots (the local router and HAProxy in `make test`, nginx too in `make soak`);
in `make soak` the sequence runs again through every router with a real
Prometheus scraping both slots, canary and baseline told apart by version. v2
(healthy), v3 (8% errors), v4 (healthy), v5 (8% errors): each healthy one is
promoted, each faulty one rolled back, and after every rollout every answer
through the router comes from the version that should serve it. Once, the
second rollout through HAProxy judged the old slots and promoted a broken
version; the local router sent traffic back to the version before last.

With fixed scrape URLs aimed at the first assignment, the rollout whose
"canary" URL reads the stable process is refused before traffic moves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from safeship.store import open_store

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("SAFESHIP_SOAK_ROUNDS", "1"))  # of four rollouts; `make soak` more
FAULTY = {f"v{n}" for n in range(3, 2 + 4 * ROUNDS, 2)}  # v3, v5, ...: 8% errors
HOOKS = Path(__file__).resolve().parents[2] / "examples" / "hooks"


class Slots:
    """The example hooks, run as a rollout runs them: a version into a slot, or none."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fault = 0.08  # the error rate of the faulty versions

    def env(self, version: str = "") -> dict[str, str]:
        rate = str(self.fault if version in FAULTY else 0.0)
        return {"SAFESHIP_SLOT_DIR": str(self.directory), "PYTHON": sys.executable,
                "SAMPLE_ERROR_RATE": rate}  # fmt: skip

    def hook(self, script: str, slot: str, address: str, version: str = "") -> None:
        env = {**os.environ, **self.env(version), "SAFESHIP_CANARY_SLOT": slot,
               "SAFESHIP_CANARY_ADDRESS": address, "SAFESHIP_VERSION": version,
               "SAFESHIP_SERVICE": "checkout", "SAFESHIP_ENVIRONMENT": "production"}  # fmt: skip
        done = subprocess.run([str(HOOKS / script)], env=env, capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(params=["local", "haproxy", "nginx"])
def rig(request: pytest.FixtureRequest) -> Iterator[RouterRig]:
    kind: RigKind = request.param
    if kind != "local":
        request.getfixturevalue(f"{kind}_installed")
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with router_rig(kind, addresses) as started:
        yield started


def write_config(
    tmp_path: Path,
    rig: RouterRig,
    provider: dict[str, Any],
    prometheus: dict[str, Any] | None = None,
) -> Path:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 3, "warmup": 0.5, "interval": 0.5,
                   "min_requests": 20},
        "router": rig.settings.model_dump(mode="json"),
        "provider": provider,
        "hooks": {"pre_rollout": [{"command": [str(HOOKS / "deploy-sample-service.sh")]}],
                  "on_rollback": [{"command": [str(HOOKS / "stop-sample-service.sh")]}]},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
        **({"prometheus": prometheus} if prometheus else {}),
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def safeship(
    config: Path, slots: Slots, *args: str, version: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PUSHGATEWAY_URL": "", **slots.env(version)},
    )  # fmt: skip


def answered_by(rig: RouterRig, n: int = 40) -> set[str]:
    """Which versions answer real requests through the router (errors name theirs too)."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        return {client.get(rig.url).text.split()[-1] for _ in range(n)}


@pytest.fixture
def deployed(rig: RouterRig, tmp_path: Path) -> Iterator[Slots]:
    """v1 in the first slot, as the first install put it there; load through the router."""
    slots = Slots(tmp_path / "slots")
    try:
        slots.hook("deploy-sample-service.sh", "blue", rig.slots["blue"], "v1")
        with LoadGenerator(rig.url, rps=150):
            yield slots
    finally:
        for name, address in rig.slots.items():
            slots.hook("stop-sample-service.sh", name, address)


# (router, provider): `make test` the local router and HAProxy with the scrape provider
# (the Kubernetes sequences judge by a real Prometheus); `make soak` every router with both.
SOAK = "SAFESHIP_SOAK_ROUNDS" in os.environ
PAIRS = [("local", "scrape"), ("haproxy", "scrape")]
if SOAK:
    PAIRS += [("nginx", "scrape"), ("local", "prometheus"), ("haproxy", "prometheus"),
              ("nginx", "prometheus")]  # fmt: skip


@pytest.mark.parametrize(("rig", "provider"), PAIRS, indirect=["rig"])
def test_healthy_faulty_healthy_faulty_each_ends_right_with_the_right_version_serving(
    rig: RouterRig, provider: str, deployed: Slots, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with ExitStack() as stack:
        if provider == "scrape":
            config = write_config(tmp_path, rig, {"type": "scrape"})  # the slot templates
        else:
            request.getfixturevalue("prometheus_installed")
            # Short holds and a second's scrape lag: clearly faulty versions, judged in time.
            deployed.fault = 0.2
            prometheus = stack.enter_context(PrometheusServer(scrape_interval=1.0))
            prometheus.add_targets(*rig.slots.values())
            prometheus.wait_for_targets(rig.slots["blue"])
            config = write_config(
                tmp_path,
                rig,
                {"type": "prometheus"},  # canary and baseline by version
                prometheus={"url": prometheus.url, "scrape_interval": 1},
            )
        _run_the_sequence(rig, deployed, tmp_path, config)


def _run_the_sequence(rig: RouterRig, deployed: Slots, tmp_path: Path, config: Path) -> None:
    serving = "v1"
    for version in [f"v{n}" for n in range(2, 2 + 4 * ROUNDS)]:
        run = safeship(config, deployed, "rollout", "--version", version, "--json", version=version)
        outcome = json.loads(run.stdout)
        expected = (1, "rolled_back", "high_error_rate") if version in FAULTY else (0, "promoted")
        got = (run.returncode, outcome["outcome"], outcome["reason"])[: len(expected)]
        if version not in FAULTY:
            serving = version
        answers = answered_by(rig)
        if (got, answers) != (expected, {serving}):
            story = safeship(config, deployed, "rollout", "explain", outcome["deployment_id"])
            pytest.fail(f"{version}: {got}, answered by {answers}\n{run.stderr}\n{story.stdout}")
    # Each went into the slot the stable version was not in, as the history store says.
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        history = store.slot_history("checkout", "production")
    finally:
        store.close()
    deployed_into = [(a.canary_version, a.canary_slot) for a in reversed(history)
                     if a.change == "deployed"]  # fmt: skip
    assert deployed_into[:4] == [("v2", "green"), ("v3", "blue"), ("v4", "blue"), ("v5", "green")]


@pytest.mark.parametrize("rig", ["local", "haproxy"] if SOAK else ["haproxy"], indirect=True)
def test_fixed_urls_that_read_the_stable_process_are_refused_before_traffic_moves(
    rig: RouterRig, deployed: Slots, tmp_path: Path
) -> None:
    blue, green = rig.slots["blue"], rig.slots["green"]
    fixed = {
        "type": "scrape",
        "canary_url": f"http://{green}/metrics",
        "baseline_url": f"http://{blue}/metrics",
    }
    config = write_config(tmp_path, rig, fixed)
    first = safeship(config, deployed, "rollout", "--version", "v2", "--json", version="v2")
    assert json.loads(first.stdout)["outcome"] == "promoted", first.stdout + first.stderr
    # v3 goes into blue, but the "canary" URL reads green, where v2 now serves everyone.
    second = safeship(config, deployed, "rollout", "--version", "v3", "--json", version="v3")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "refused before any traffic moved" in second.stderr
    assert f"http://{green}/metrics" in second.stderr
    assert "should be v3" in second.stderr
    assert answered_by(rig) == {"v2"}
    assert rig.router.get_weight() == 0
    listed = json.loads(safeship(config, deployed, "rollout", "list", "--json").stdout)
    assert [r["outcome"] for r in listed["deployments"]] == ["failed", "promoted"]
