"""Rollouts in a row, as a user runs them week after week, through every router's data plane.

The pre-rollout hook deploys each new version into the slot it is told
(`SAFESHIP_CANARY_ADDRESS`), through a small deployer this test runs; the
scrape provider is left at its defaults, templates over the slots. v2
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
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import free_port
from safeship.demo.rigs import RigKind, RouterRig, router_rig
from safeship.demo.service import ServiceProcess, start_service

pytestmark = pytest.mark.integration

FAULTY = {"v3": 0.08, "v5": 0.08}  # error rate per version; the others have none
HOOK = (
    "import os, httpx; httpx.post(os.environ['DEPLOYER'], timeout=30, params={"
    "'address': os.environ['SAFESHIP_CANARY_ADDRESS'], 'version': os.environ['SAFESHIP_VERSION'],"
    "'slot': os.environ['SAFESHIP_CANARY_SLOT']}).raise_for_status()"
)


class Deployer:
    """What a deploy system does for the hook: replace whatever runs at an address."""

    def __init__(self) -> None:
        self.running: dict[str, ServiceProcess] = {}
        self.log: list[str] = []
        deployer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                deployer.deploy(query["address"], query["version"])
                deployer.log.append(f"{query['version']} -> {query['slot']}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/deploy"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def deploy(self, address: str, version: str) -> None:
        old = self.running.pop(address, None)
        if old is not None:
            old.stop()
        self.running[address] = start_service(
            address, "checkout", "production", version, "canary", error_rate=FAULTY.get(version, 0)
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for process in self.running.values():
            process.stop()


@pytest.fixture(params=["local", "haproxy", "nginx"])
def rig(request: pytest.FixtureRequest) -> Iterator[RouterRig]:
    kind: RigKind = request.param
    if kind != "local":
        request.getfixturevalue(f"{kind}_installed")
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with router_rig(kind, addresses) as started:
        yield started


def write_config(tmp_path: Path, rig: RouterRig, provider: dict[str, Any]) -> Path:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 3, "warmup": 0.5, "interval": 0.5,
                   "min_requests": 20},
        "router": rig.settings.model_dump(mode="json"),
        "provider": provider,
        "hooks": {"pre_rollout": [{"command": [sys.executable, "-c", HOOK]}]},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def safeship(
    config: Path, deployer: Deployer, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PUSHGATEWAY_URL": "", "DEPLOYER": deployer.url},
    )  # fmt: skip


def answered_by(rig: RouterRig, n: int = 40) -> set[str]:
    """Which versions answer real requests through the router (errors name theirs too)."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        return {client.get(rig.url).text.split()[-1] for _ in range(n)}


@pytest.fixture
def deployed(rig: RouterRig) -> Iterator[Deployer]:
    """v1 in the first slot, as the first install put it there; load through the router."""
    deployer = Deployer()
    try:
        deployer.deploy(rig.slots["blue"], "v1")
        with LoadGenerator(rig.url, rps=150):
            yield deployer
    finally:
        deployer.close()


def test_healthy_faulty_healthy_faulty_each_ends_right_with_the_right_version_serving(
    rig: RouterRig, deployed: Deployer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, rig, {"type": "scrape"})  # the slot templates
    serving = "v1"
    for version in ("v2", "v3", "v4", "v5"):
        run = safeship(config, deployed, "rollout", "--version", version, "--json")
        outcome = json.loads(run.stdout)
        expected = (1, "rolled_back", "high_error_rate") if version in FAULTY else (0, "promoted")
        got = (run.returncode, outcome["outcome"], outcome["reason"])[: len(expected)]
        if version not in FAULTY:
            serving = version
        answers = answered_by(rig)
        if (got, answers) != (expected, {serving}):
            story = safeship(config, deployed, "rollout", "explain", outcome["deployment_id"])
            pytest.fail(f"{version}: {got}, answered by {answers}\n{run.stderr}\n{story.stdout}")
    # Each went into the slot the stable version was not in.
    assert deployed.log == ["v2 -> green", "v3 -> blue", "v4 -> blue", "v5 -> green"]


@pytest.mark.parametrize("rig", ["local", "haproxy"], indirect=True)
def test_fixed_urls_that_read_the_stable_process_are_refused_before_traffic_moves(
    rig: RouterRig, deployed: Deployer, tmp_path: Path
) -> None:
    blue, green = rig.slots["blue"], rig.slots["green"]
    fixed = {
        "type": "scrape",
        "canary_url": f"http://{green}/metrics",
        "baseline_url": f"http://{blue}/metrics",
    }
    config = write_config(tmp_path, rig, fixed)
    first = safeship(config, deployed, "rollout", "--version", "v2", "--json")
    assert json.loads(first.stdout)["outcome"] == "promoted", first.stdout + first.stderr
    # v3 goes into blue, but the "canary" URL reads green, where v2 now serves everyone.
    second = safeship(config, deployed, "rollout", "--version", "v3", "--json")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "refused before any traffic moved" in second.stderr
    assert f"http://{green}/metrics" in second.stderr
    assert "should be v3" in second.stderr
    assert answered_by(rig) == {"v2"}
    assert rig.router.get_weight() == 0
    listed = json.loads(safeship(config, deployed, "rollout", "list", "--json").stdout)
    assert [r["outcome"] for r in listed["deployments"]] == ["failed", "promoted"]
