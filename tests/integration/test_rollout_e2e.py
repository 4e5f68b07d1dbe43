"""Real rollouts on loopback: sample-service processes, the local router process, real load.

These prove the main job end to end: a healthy canary is promoted, a faulty
one is rolled back by itself to weight 0 with the decision stored, the CLI's
exit codes and `explain` tell the story, and `/metrics` serves the totals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from safeship.config import CanaryStrategy
from safeship.demo.load import LoadGenerator
from safeship.demo.sandbox import Fault, Scenario, sandbox
from safeship.demo.service import ServiceProcess, start_service
from safeship.rollout.machine import Outcome, Reason
from safeship.routers.local import LocalProxyProcess, LocalRouter, start_local_proxy

pytestmark = pytest.mark.integration

FAST = CanaryStrategy(hold=5.0, warmup=1.0, interval=1.0, min_requests=40)


def test_sandbox_promotes_healthy_and_rolls_back_faulty_canary(tmp_path: Path) -> None:
    with sandbox(rps=150, store_url=f"sqlite:///{tmp_path / 'h.db'}", strategy=FAST) as box:
        healthy = box.run(Scenario("v2", Fault()), on_event=None)
        faulty = box.run(Scenario("v3", Fault(error_rate=0.05)), on_event=None)
        weight_after = box.router.get_weight()
        store = box.store
        assert healthy.state.outcome is Outcome.PROMOTED
        assert faulty.state.outcome is Outcome.ROLLED_BACK
        assert faulty.state.reason is Reason.HIGH_ERROR_RATE
        assert weight_after == 0
        record = store.get_deployment(faulty.state.deployment_id)
        assert record is not None
        assert (record.outcome, record.reason, record.max_weight) == (
            "rolled_back",
            "high_error_rate",
            10,
        )
        rollback = [d for d in store.decisions(record.id) if d.action == "rollback"]
        assert rollback[0].inputs["verdict"]["samples"]["canary_errors"] > 0
        assert faulty.canary_failed_requests > 0
        # After promotion the new version serves as stable: the faulty canary only saw 10%.
        assert faulty.canary_requests < healthy.canary_requests


def _in_empty_folder(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`safeship ARGS` in `folder`, with no setting from the environment for a config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFESHIP_", "PUSHGATEWAY"))}
    return subprocess.run(
        [sys.executable, "-m", "safeship", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_keeps_its_history_and_the_commands_it_prints_work_with_no_config(
    tmp_path: Path,
) -> None:
    demo = _in_empty_folder(tmp_path, "demo", "--fault", "error-rate=0.3", "--rps", "100")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    printed = demo.stdout.split("Explore it:\n", 1)[1].splitlines()
    commands = [line.split()[1:] for line in printed if line.startswith("  safeship ")]
    assert [c[:2] for c in commands] == [
        ["rollout", "explain"],
        ["rollout", "list"],
        ["report", "--service"],
    ]
    explained = _in_empty_folder(tmp_path, *commands[0])
    assert explained.returncode == 0, explained.stderr
    assert f"rollout {commands[0][2]}: safeship-demo v1.1.0 -> demo" in explained.stdout
    assert "outcome: rolled_back (high_error_rate)" in explained.stdout
    listed = _in_empty_folder(tmp_path, *commands[1])
    assert commands[0][2] in listed.stdout
    reported = _in_empty_folder(tmp_path, *commands[2])
    assert reported.returncode == 0, reported.stderr
    assert "1 deployments: 0 promoted, 1 rolled back or aborted" in reported.stdout
    # Without naming it, the demo stays out of the report of real deployments.
    plain = _in_empty_folder(tmp_path, "report")
    assert "No deployments started in this period." in plain.stdout
    assert "Left out: 1 demo rollouts (service safeship-demo)" in plain.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [".safeship"]


def test_demo_json_reports_rollback_with_the_deciding_inputs(tmp_path: Path) -> None:
    proc = _in_empty_folder(tmp_path, "demo", "--json", "--fault", "error-rate=0.05")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema_version"] == 1
    assert report["outcome"] == "rolled_back"
    assert report["reason"] == "high_error_rate"
    assert report["steps_reached"] == [10]
    assert report["canary_requests"] > 0
    assert 0 < report["canary_failed_requests"] < report["canary_requests"]
    assert report["duration"] > 0
    deciding = [d for d in report["decisions"] if d["action"] == "rollback"]
    assert len(deciding) == 1
    assert report["cause"]["seq"] == deciding[0]["seq"]
    check = deciding[0]["inputs"]["verdict"]["checks"][0]
    assert check["name"] == "error_rate"
    assert check["result"] == "fail"
    assert check["canary"] > check["baseline"]
    assert check["details"]["e_value"] >= check["details"]["e_threshold"]
    assert check["details"]["canary_errors"] > 0


@dataclass
class Stack:
    stable: ServiceProcess
    proxy: LocalProxyProcess
    config: Path
    store: Path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Stable service, local router and load; the test starts its own canary."""
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, stable.url) as proxy,
        LoadGenerator(proxy.url, rps=150),
    ):
        yield Stack(stable, proxy, tmp_path / "safeship.yaml", tmp_path / "history.db")


def write_config(stack: Stack, canary: ServiceProcess) -> None:
    stack.config.write_text(
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
  type: local
  admin_url: {stack.proxy.admin_url}
provider:
  type: scrape
  canary_url: {canary.metrics_url}
  baseline_url: {stack.stable.metrics_url}
smoke_tests:
  - name: canary-health
    http: {{url: "{canary.url}/healthz", expect_body: ok}}
store:
  url: sqlite:///{stack.store}
"""
    )


def safeship(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeship", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def point_canary(stack: Stack, canary: ServiceProcess) -> None:
    request = urllib.request.Request(
        f"{stack.proxy.admin_url}/upstreams",
        data=json.dumps({"canary": canary.url}).encode(),
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_cli_rollout_exit_codes_explain_and_metrics(stack: Stack) -> None:
    with start_service(
        "127.0.0.1:0", "checkout", "production", "v2", "canary", error_rate=0.1
    ) as canary:
        point_canary(stack, canary)
        write_config(stack, canary)
        bad = safeship(
            "--config", str(stack.config), "rollout", "--version", "v2", "--json",
            env={"PUSHGATEWAY_URL": "http://127.0.0.1:9"},
        )  # fmt: skip
    assert bad.returncode == 1, bad.stderr  # a Pushgateway that is down changes nothing
    assert "could not push metrics to the Pushgateway" in bad.stderr
    result = json.loads(bad.stdout)
    assert result["metrics_pushed"] is False
    assert (result["outcome"], result["reason"], result["weight"]) == (
        "rolled_back",
        "high_error_rate",
        0,
    )
    router = LocalRouter(stack.proxy.admin_url)
    try:
        assert router.get_weight() == 0
    finally:
        router.close()

    explained = safeship(
        "--config", str(stack.config), "rollout", "explain", result["deployment_id"]
    )
    assert explained.returncode == 0, explained.stderr
    assert "outcome: rolled_back (high_error_rate)" in explained.stdout
    assert "error_rate: fail" in explained.stdout
    assert f"query[canary]: scrape {canary.url}/metrics" in explained.stdout

    with start_service("127.0.0.1:0", "checkout", "production", "v3", "canary") as canary:
        point_canary(stack, canary)
        write_config(stack, canary)
        good = safeship(
            "--config", str(stack.config), "rollout", "--version", "v3",
            env={"CANARY_STEPS": "20,100"},
        )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert "promoted at weight 100%" in good.stdout

    port = free_port()
    served = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "safeship",
            "--config",
            str(stack.config),
            "metrics",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        text = fetch_metrics(port)
    finally:
        served.terminate()
        served.communicate(timeout=10)
    where = {"service": "checkout", "environment": "production"}
    assert sample(text, "deployment_total", {**where, "status": "success"}) == 1
    assert sample(text, "deployment_total", {**where, "status": "rolled_back"}) == 1
    assert sample(text, "deployment_rollback_total", {**where, "reason": "high_error_rate"}) == 1
    assert sample(text, "smoke_test_total", {**where, "result": "passed"}) == 2


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fetch_metrics(port: int) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


LOOK = re.compile(
    r"^ 10% \[[#-]{8}\] +\d+/2s  req \d+ vs \d+  errors \d+(\.\d+)?% vs \d+(\.\d+)?%  "
    r"p95 \(bucket estimate\) \d+ vs \d+ ms  inconclusive$"
)


def test_the_live_view_of_a_rollout_and_its_resume_labels_every_figure(stack: Stack) -> None:
    """What a person sees, piped (plain text): one labelled line per look, one reason line."""
    with start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary:
        point_canary(stack, canary)
        write_config(stack, canary)
        # Never enough requests: the rollout pauses after its hold, and again after resuming.
        text = stack.config.read_text().replace("hold: 5", "hold: 2")
        stack.config.write_text(text.replace("min_requests: 40", "min_requests: 1000000"))
        first = safeship("--config", str(stack.config), "rollout", "--version", "v2")
        assert first.returncode == 4, first.stdout + first.stderr
        deployment_id = first.stdout.split(" as ", 1)[1].split(":")[0]
        again = safeship("--config", str(stack.config), "rollout", "resume", deployment_id)
        assert again.returncode == 4, again.stdout + again.stderr
    for shown in (first.stdout, again.stdout):
        lines = shown.splitlines()
        looks = [line for line in lines if LOOK.match(line)]
        assert looks, shown
        assert "      error_rate: not enough data: canary " in shown
        assert any(line.startswith(" 10% PAUSED ") for line in lines), shown
        assert max(len(line) for line in lines) <= 120, shown
        assert "\x1b[" not in shown
    assert first.stdout.splitlines()[0].startswith(f"  0% rolling out v2 as {deployment_id}")
    assert first.stdout.splitlines()[-3:] == [
        f"{deployment_id}: paused at weight 10% (no_data)",
        f"  why: safeship rollout explain {deployment_id}",
        f"  then: safeship rollout resume|promote|abort {deployment_id}",
    ]


def test_ctrl_c_says_the_rollout_stays_where_it_was_and_not_that_it_was_aborted(
    stack: Stack,
) -> None:
    with start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary:
        point_canary(stack, canary)
        write_config(stack, canary)
        stack.config.write_text(stack.config.read_text().replace("hold: 5", "hold: 60"))
        run = subprocess.Popen(
            [sys.executable, "-m", "safeship", "--config", str(stack.config), "rollout",
             "--version", "v2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert run.stdout is not None
        seen = ""
        while "\n 10% [" not in seen:  # a look at 10%: the rollout is holding
            line = run.stdout.readline()
            assert line, run.communicate(timeout=30)
            seen += line
        run.send_signal(signal.SIGINT)
        err = run.communicate(timeout=60)[1]
    deployment_id = seen.split(" as ", 1)[1].split(":")[0]
    assert run.returncode == 130
    assert [line for line in err.splitlines() if line][-2:] == [
        f"interrupted: rollout {deployment_id} stays where it was; continue with `safeship "
        f"rollout resume {deployment_id}` or stop it with `safeship rollout abort "
        f"{deployment_id}`",
        "interrupted (Ctrl-C): stopped",
    ]
    assert "aborted" not in err
    status = safeship("--config", str(stack.config), "rollout", "status", deployment_id, "--json")
    assert json.loads(status.stdout)["rollouts"][0]["phase"] == "holding"
