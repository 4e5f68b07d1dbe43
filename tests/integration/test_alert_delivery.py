"""End to end: a faulty canary rolled back by safeship pages through real Alertmanager.

safeship rolls the canary back and pushes its totals to a real Pushgateway;
a real Prometheus scrapes it and evaluates the generated rules; a real
Alertmanager 0.25 routes the alert to a webhook receiver served by this test.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import AlertmanagerServer, PrometheusServer, PushgatewayServer
from safeship.demo.service import start_service
from safeship.routers.local import start_local_proxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A webhook receiver: every alert Alertmanager posts lands in `alerts`."""

    def __init__(self) -> None:
        self.alerts: queue.Queue[dict[str, Any]] = queue.Queue()
        received = self.alerts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for alert in body.get("alerts", []):
                    received.put(alert)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                alert = self.alerts.get(timeout=left)
            except queue.Empty:
                break
            if alert["labels"].get("alertname") == name:
                return alert
        raise AssertionError(f"{name} did not arrive within {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def fast_rules(tmp_path: Path) -> Path:
    """The generated rules with `for` shortened, so the test waits seconds, not minutes."""
    text = (ROOT / ".prometheus" / "alerts.yml").read_text()
    path = tmp_path / "alerts.yml"
    path.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 1s", text))
    return path


def alertmanager_config(webhook: str) -> str:
    return (
        "route:\n  receiver: test\n  group_by: [alertname, environment]\n"
        "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        f"receivers:\n  - name: test\n    webhook_configs:\n      - url: {webhook}\n"
    )


@pytest.mark.usefixtures("prometheus_installed", "alertmanager_installed")
def test_a_rolled_back_canary_delivers_the_rollback_alert(
    tmp_path: Path, receiver: Receiver, pushgateway: PushgatewayServer
) -> None:
    with (
        AlertmanagerServer(alertmanager_config(receiver.url)) as alertmanager,
        PrometheusServer(
            scrape_interval=1.0,
            rule_files=(fast_rules(tmp_path),),
            alertmanager=alertmanager.address,
        ) as prometheus,
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service(
            "127.0.0.1:0", "checkout", "production", "v2", "canary", error_rate=0.2
        ) as canary,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url) as proxy,
        LoadGenerator(proxy.url, rps=100),
    ):
        prometheus.add_targets(pushgateway.address)
        prometheus.wait_for_targets(pushgateway.address)
        config = tmp_path / "safeship.yaml"
        config.write_text(
            "service: checkout\n"
            "environments:\n  production: {}\n"
            "canary: {hold: 5, warmup: 1, interval: 1, min_requests: 20}\n"
            f"router: {{type: local, admin_url: '{proxy.admin_url}'}}\n"
            f"provider: {{type: scrape, canary_url: '{canary.metrics_url}', "
            f"baseline_url: '{stable.metrics_url}'}}\n"
            f"store: {{url: 'sqlite:///{tmp_path / 'history.db'}'}}\n"
        )
        # The start-of-rollout push puts the zeros in place; give Prometheus a scrape
        # of them before the outcome changes them.
        rollout = subprocess.run(
            [sys.executable, "-m", "safeship", "--config", str(config), "rollout", "--version",
             "v2"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PUSHGATEWAY_URL": pushgateway.url},
        )  # fmt: skip
        assert rollout.returncode == 1, rollout.stdout + rollout.stderr
        assert "rolled_back" in rollout.stdout
        alert = receiver.wait_for("DeploymentRollbackDetected", timeout=90)
    labels = alert["labels"]
    assert labels["environment"] == "production"
    assert labels["service"] == "checkout"
    assert labels["reason"] == "high_error_rate"
    assert labels["severity"] == "warning"
    assert "rolled back" in alert["annotations"]["summary"]
    assert "high_error_rate" in alert["annotations"]["description"]
