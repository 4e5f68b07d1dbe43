"""Deployment metrics pushed from short-lived processes become queryable, as running totals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from safeship.demo.monitoring import PrometheusServer, PushgatewayServer
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord

pytestmark = pytest.mark.integration


def record_deployment(db: Path, deployment_id: str, outcome: str, reason: str | None) -> None:
    store = open_store(f"sqlite:///{db}")
    try:
        store.create_deployment(
            DeploymentRecord(
                id=deployment_id,
                service="checkout",
                environment="production",
                version=deployment_id,
                started_at=time.time() - 120,
                finished_at=time.time(),
                outcome=outcome,
                reason=reason,
            )
        )
    finally:
        store.close()


def push(config: Path, *extra: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PUSHGATEWAY_URL"}
    if url:
        env["PUSHGATEWAY_URL"] = url
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "safeship",
            "--config",
            str(config),
            "metrics",
            "push",
            "--env",
            "production",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def query(prometheus: PrometheusServer, expr: str, want: float, timeout: float = 20) -> float:
    deadline = time.monotonic() + timeout
    value = float("nan")
    while time.monotonic() < deadline:
        body = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": expr}).json()
        result = body["data"]["result"]
        value = float(result[0]["value"][1]) if result else float("nan")
        if value == want:
            return value
        time.sleep(0.3)
    return value


def test_pushed_totals_become_queryable_and_keep_counting_across_processes(
    prometheus: PrometheusServer, pushgateway: PushgatewayServer, tmp_path: Path
) -> None:
    prometheus.add_targets(pushgateway.address)
    db = tmp_path / "history.db"
    config = tmp_path / "safeship.yaml"
    config.write_text(f"service: checkout\nstore:\n  url: sqlite:///{db}\n")
    record_deployment(db, "d1", "promoted", None)
    first = push(config, url=pushgateway.url)
    assert first.returncode == 0, first.stderr
    success = (
        'deployment_total{job="safeship",service="checkout",environment="production",'
        'status="success"}'
    )
    assert query(prometheus, success, 1) == 1

    # A later CI run, a new process: the pushed value is the running total, not 1.
    record_deployment(db, "d2", "promoted", None)
    record_deployment(db, "d3", "rolled_back", "high_error_rate")
    assert push(config, url=pushgateway.url).returncode == 0
    assert query(prometheus, success, 2) == 2
    rollbacks = (
        'deployment_rollback_total{service="checkout",environment="production",'
        'reason="high_error_rate"}'
    )
    assert query(prometheus, rollbacks, 1) == 1
    assert query(prometheus, 'count(push_time_seconds{service="checkout"})', 1) == 1


def test_pushgateway_down_warns_and_exits_0_unless_strict(tmp_path: Path) -> None:
    config = tmp_path / "safeship.yaml"
    config.write_text(f"service: checkout\nstore:\n  url: sqlite:///{tmp_path / 'h.db'}\n")
    down = "http://user:s3cret@127.0.0.1:9"
    result = push(config, url=down)
    assert result.returncode == 0
    assert "could not push metrics to the Pushgateway" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert push(config, "--strict", url=down).returncode == 3
