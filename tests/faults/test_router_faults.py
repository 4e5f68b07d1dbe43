"""A router that stops answering between two steps: HAProxy and nginx, for real.

Real sample services sit in the two slots (stable v1 in blue, canary v2 in
green) behind a real HAProxy or nginx under load; `safeship rollout` runs in the
background. Once step 1 (10%) is confirmed and holding, the router breaks:

* HAProxy: the config points at a symlink to the Runtime API socket, and the
  symlink is deleted (what a removed socket looks like);
* nginx: the main nginx.conf becomes invalid, so every `nginx -t` refuses.

Policy: the shift to the next step is retried (the controller's router_retries,
2 retries with backoff), then the rollout rolls back (reason router_error);
the rollback cannot be confirmed either, so safeship exits 1 saying the
rollback is not confirmed and to run `safeship rollout resume ID`; the state
stays rolling_back (never promoted) and traffic stays where the router has it.
With the router repaired, `resume` finishes the rollback: weight 0, real
traffic on stable only.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.faults.conftest import rollout_reaches, safeship, start_safeship, stored, wait_for

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import free_port
from safeship.demo.service import start_service
from safeship.routers.interface import Router

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    kind: str
    url: str
    router: Router  # drives the real router directly (not through the fault)
    settings: dict[str, Any]  # what safeship is configured with
    break_router: Callable[[], None]
    repair_router: Callable[[], None]
    stable_url: str
    canary_url: str


@pytest.fixture(params=["haproxy", "nginx"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    kind: str = request.param
    request.getfixturevalue(f"{kind}_installed")
    blue, green = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with ExitStack() as stack:
        stable = stack.enter_context(start_service(blue, "checkout", "production", "v1", "stable"))
        canary = stack.enter_context(start_service(green, "checkout", "production", "v2", "canary"))
        if kind == "haproxy":
            from safeship.demo.haproxy_server import HaproxyServer

            haproxy = stack.enter_context(HaproxyServer({"blue": blue, "green": green}))
            # Unix socket paths are short: a folder of its own for the symlink.
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssf-")))
            link = folder / "admin.sock"
            link.symlink_to(haproxy.socket)
            settings = haproxy.settings().model_dump(mode="json") | {"socket": str(link)}
            url, router = haproxy.url, haproxy.router()

            def break_router() -> None:
                link.unlink()

            def repair_router() -> None:
                link.symlink_to(haproxy.socket)

        else:
            from safeship.demo.nginx_server import NginxServer

            nginx = stack.enter_context(NginxServer({"blue": blue, "green": green}))
            settings = nginx.settings().model_dump(mode="json")
            url, router = nginx.url, nginx.router()
            good = nginx.config_file.read_text()

            def break_router() -> None:
                nginx.config_file.write_text(good + "this is not nginx;\n")

            def repair_router() -> None:
                nginx.config_file.write_text(good)

        stack.enter_context(LoadGenerator(url, rps=150))
        yield Rig(
            kind,
            url,
            router,
            settings,
            break_router,
            repair_router,
            stable.metrics_url,
            canary.metrics_url,
        )


def write_config(rig: Rig, tmp_path: Path) -> Path:
    config = {
        "service": "checkout",
        "environments": {"production": {}},
        "canary": {"steps": [10, 50, 100], "hold": 3, "warmup": 0.5, "interval": 0.5,
                   "min_requests": 10},
        "router": rig.settings,
        "provider": {"type": "scrape", "canary_url": rig.canary_url,
                     "baseline_url": rig.stable_url},
        "store": {"url": f"sqlite:///{tmp_path / 'history.db'}"},
    }  # fmt: skip
    path = tmp_path / "safeship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_router_lost_mid_shift_leaves_a_resumable_rollback_then_resume_finishes_it(
    rig: Rig, tmp_path: Path
) -> None:
    config = write_config(rig, tmp_path)
    store_url = f"sqlite:///{tmp_path / 'history.db'}"
    deployment_id = f"router-{rig.kind}"
    process = start_safeship(config, "rollout", "--version", "v2", "--deployment-id", deployment_id)
    try:
        wait_for(
            "step 1 (10%) holding",
            rollout_reaches(
                store_url,
                deployment_id,
                lambda s, _: s["phase"] == "holding" and s["weight"] == 10,
            ),
        )
        rig.break_router()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # Exit 1 with the documented message: what, where, and how to finish.
    assert process.returncode == 1, stdout + stderr
    assert f"rollback of {deployment_id} to weight 0 not confirmed" in stderr
    assert f"run `safeship rollout resume {deployment_id}`" in stderr
    assert "Traceback" not in stderr
    where = rig.settings["socket"] if rig.kind == "haproxy" else "nginx"
    assert where in stderr

    # Recorded: the rollback decision (router_error, after retries), and the state
    # stays rolling_back: never promoted, resumable.
    state, decisions = stored(store_url, deployment_id)
    assert state is not None
    assert (state["phase"], state["reason"], state["target_weight"]) == (
        "rolling_back",
        "router_error",
        0,
    )
    assert all(d.action not in ("promote",) for d in decisions)
    rollback = next(d for d in decisions if d.action == "rollback" and d.result == "fail")
    assert rollback.inputs == {"reason": "router_error"}
    unconfirmed = [d for d in decisions if d.action == "rollback" and d.result == "error"]
    assert len(unconfirmed) == 1
    # Traffic is where the router had it: the canary's 10%, as the message warns.
    assert rig.router.get_weight() == 10

    rig.repair_router()
    resumed = safeship(config, "rollout", "resume", deployment_id, "--json")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # rolled back = 1
    result = json.loads(resumed.stdout)
    assert (result["outcome"], result["reason"], result["weight"]) == (
        "rolled_back",
        "router_error",
        0,
    )
    assert rig.router.get_weight() == 0
    with httpx.Client(trust_env=False, timeout=5) as client:
        answers = {client.get(rig.url).text for _ in range(30)}
    assert answers == {"ok v1\n"}
