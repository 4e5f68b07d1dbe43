"""`safeship rollout` from a config, through HAProxy and nginx, with real services in the slots.

The stable version serves from the blue slot and the canary is deployed into
the idle slot, as a user's pre-rollout hook would do: the hook is told which
slot and address (it records them here). A healthy canary is promoted, which
makes its slot the stable one; the next, faulty, canary goes into the other
slot and is rolled back to 0% with traffic staying on the promoted version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import free_port
from safeship.demo.rigs import RigKind, RouterRig, router_rig
from safeship.demo.service import ServiceProcess, start_service

pytestmark = pytest.mark.integration


@pytest.fixture(params=["haproxy", "nginx"])
def rig(request: pytest.FixtureRequest) -> Iterator[RouterRig]:
    kind: RigKind = request.param
    request.getfixturevalue(f"{kind}_installed")
    addresses = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    with router_rig(kind, addresses) as started:
        yield started


def deploy(address: str, version: str, track: str, error_rate: float = 0.0) -> ServiceProcess:
    return start_service(address, "checkout", "production", version, track, error_rate=error_rate)


def rollout(
    tmp_path: Path, rig: RouterRig, version: str, canary: ServiceProcess, stable: ServiceProcess
) -> subprocess.CompletedProcess[str]:
    hook_log = tmp_path / "hook.log"
    script = (
        "import os, sys; open(sys.argv[1], 'a').write(os.environ['SAFESHIP_CANARY_SLOT'] + ' ' "
        "+ os.environ.get('SAFESHIP_CANARY_ADDRESS', '-') + '\\n')"
    )
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 5, "warmup": 1, "interval": 1,
                   "min_requests": 40},
        "router": rig.settings.model_dump(mode="json"),
        "provider": {"type": "scrape", "canary_url": canary.metrics_url,
                     "baseline_url": stable.metrics_url},
        "hooks": {"pre_rollout": [{"command": [sys.executable, "-c", script, str(hook_log)]}]},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return safeship(path, "rollout", "--version", version, "--json")


def safeship(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PUSHGATEWAY_URL": ""},
    )  # fmt: skip


def test_rollout_promotes_into_the_idle_slot_then_rolls_back_the_next(
    rig: RouterRig, tmp_path: Path
) -> None:
    blue, green = rig.slots["blue"], rig.slots["green"]
    with ExitStack() as stack:
        v1 = stack.enter_context(deploy(blue, "v1", "stable"))
        stack.enter_context(LoadGenerator(rig.url, rps=200))
        v2 = stack.enter_context(deploy(green, "v2", "canary"))
        good = rollout(tmp_path, rig, "v2", v2, v1)
        assert good.returncode == 0, good.stdout + good.stderr
        assert json.loads(good.stdout)["outcome"] == "promoted"
        answers = {httpx.get(rig.url).text for _ in range(20)}
        assert answers == {"ok v2\n"}

        # The old version leaves the blue slot; the next canary is deployed there.
        v1.stop()
        v3 = stack.enter_context(deploy(blue, "v3", "canary", error_rate=0.2))
        bad = rollout(tmp_path, rig, "v3", v3, v2)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        result = json.loads(bad.stdout)
        assert (result["outcome"], result["reason"], result["weight"]) == (
            "rolled_back",
            "high_error_rate",
            0,
        )
        assert rig.router.get_weight() == 0
        assert {httpx.get(rig.url).text for _ in range(20)} == {"ok v2\n"}
        status = safeship(tmp_path / "safeship.yaml", "router", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) | {"detail": "-"} == {
            "environment": "production",
            "type": rig.kind,
            "healthy": True,
            "detail": "-",
            "canary_weight": 0,
            "canary_slot": "blue",
            "canary_address": blue,
        }
    hook_calls = (tmp_path / "hook.log").read_text().splitlines()
    assert hook_calls == [f"green {green}", f"blue {blue}"]
