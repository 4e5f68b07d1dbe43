"""Commands that need only the history store, the metrics or Grafana work in a folder
with no safeship.yaml, on the embedded defaults, and say which defaults they used."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from safeship.cli.main import main
from safeship.config import DEMO_SERVICE
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord
from safeship.testing_grafana import GrafanaDouble

DEFAULT_NOTE = "no safeship.yaml here: using the default history store .safeship/history.db"


@pytest.fixture(autouse=True)
def _empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty folder, and no setting from the environment that stands in for a config."""
    for name in ("SAFESHIP_CONFIG", "SAFESHIP_STORE_URL", "PUSHGATEWAY_URL", "PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GRAFANA_URL", "GRAFANA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _kept(*records: DeploymentRecord) -> None:
    """Rollouts in the default store, as `safeship demo` or a rollout leaves them."""
    store = open_store("sqlite:///.safeship/history.db")
    try:
        for record in records:
            store.create_deployment(record)
    finally:
        store.close()


def _record(n: int, service: str = "checkout", environment: str = "production") -> DeploymentRecord:
    now = time.time() - 3600 + n
    return DeploymentRecord(
        id=f"01TEST{n:020d}",
        service=service,
        environment=environment,
        version=f"v{n}",
        started_at=now,
        finished_at=now + 30,
        outcome="promoted",
        max_weight=100,
    )


def test_history_commands_read_the_default_store_and_say_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _kept(_record(1), _record(2, environment="staging"))
    assert main(["rollout", "list"]) == 0
    out, err = capsys.readouterr()
    assert DEFAULT_NOTE in err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "ENVIRONMENT", "VERSION", "OUTCOME", "REASON", "STARTED",
                              "DURATION"]  # fmt: skip
    assert [row.split()[:3] for row in rows] == [
        [_record(2).id, "staging", "v2"],
        [_record(1).id, "production", "v1"],
    ]
    assert main(["rollout", "explain", _record(1).id]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"rollout {_record(1).id}: checkout v1 -> production")
    assert main(["rollout", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"schema_version": 1, "rollouts": []}
    assert not Path("safeship.yaml").exists()


def test_an_empty_folder_lists_no_rollouts_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollout", "list"]) == 0
    assert capsys.readouterr().out == "no rollouts in the history store yet\n"


def test_abort_of_a_rollout_that_never_started_needs_no_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = dataclasses.replace(_record(1), finished_at=None, outcome=None, max_weight=0)
    _kept(started)
    code = main(["rollout", "abort", started.id])
    out, err = capsys.readouterr()
    assert "using the embedded defaults (history store .safeship/history.db" in err
    assert "never started (no state recorded): failed" in err
    assert code == 1, out + err  # closed as failed: there was nothing left to abort
    assert main(["rollout", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deployments"][0]["outcome"] == "failed"


def test_a_named_config_that_is_missing_is_still_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--config", "mine.yaml", "rollout", "list"]) == 2
    assert "mine.yaml: config file not found" in capsys.readouterr().err


def test_report_leaves_the_demo_out_and_says_how_to_see_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _kept(_record(1), _record(2, DEMO_SERVICE, "demo"), _record(3, DEMO_SERVICE, "demo"))
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "1 deployments: 1 promoted" in out
    assert "Left out: 2 demo rollouts (service safeship-demo)" in out
    assert main(["report", "--service", DEMO_SERVICE, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["deployments"]["started"] == 2
    assert shown["left_out_deployments"] == 0


def test_metrics_push_without_a_config_pushes_every_service_of_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _kept(_record(1), _record(2, "payments"), _record(3, "search", "staging"))
    pushed: list[str] = []

    from http.server import BaseHTTPRequestHandler

    from safeship.testing_http import LoopbackDouble

    class Gateway(LoopbackDouble):
        def handler(self) -> type[BaseHTTPRequestHandler]:
            class Handler(BaseHTTPRequestHandler):
                def do_PUT(self) -> None:
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    pushed.append(self.path)
                    self.send_response(200)
                    self.end_headers()

                def log_message(self, *_args: object) -> None:
                    return

            return Handler

    with Gateway() as gateway:
        assert main(["--pushgateway", gateway.url, "metrics", "push", "--env", "production"]) == 0
    out = capsys.readouterr().out
    assert sorted(pushed) == [
        "/metrics/job/safeship/environment/production/service/checkout",
        "/metrics/job/safeship/environment/production/service/payments",
    ]
    assert "pushed checkout/production" in out
    assert "pushed payments/production" in out


def test_dashboards_push_versions_and_rollback_from_grafana_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("dashboards").mkdir()
    board = {
        "uid": "ours",
        "title": "Ours",
        "panels": [],
        "schemaVersion": 39,
        "templating": {"list": []},
        "annotations": {"list": []},
    }
    Path("dashboards/ours.json").write_text(json.dumps(board))
    with GrafanaDouble(folders=()) as grafana:
        monkeypatch.setenv("GRAFANA_URL", grafana.url)
        monkeypatch.setenv("GRAFANA_API_KEY", grafana.token)
        assert main(["dashboards", "push", "--deployment-id", "d1"]) == 0
        err = capsys.readouterr().err
        assert "using the embedded defaults (GRAFANA_URL, GRAFANA_API_KEY, dashboards/*.json" in err
        assert grafana.version_numbers("ours") == [1]
        Path("dashboards/ours.json").write_text(json.dumps({**board, "title": "Ours, changed"}))
        assert main(["dashboards", "push", "--deployment-id", "d2"]) == 0
        assert main(["dashboards", "versions", "ours"]) == 0
        assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[-2:]] == ["2", "1"]
        assert main(["dashboards", "rollback", "--deployment", "d2"]) == 0
        assert grafana.current("ours")["title"] == "Ours"


def test_metrics_serve_without_a_config_exports_every_service(tmp_path: Path) -> None:
    _kept(_record(1), _record(2, "payments"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESHIP_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "safeship", "metrics", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "metrics serve did not answer"
                time.sleep(0.1)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    for service in ("checkout", "payments"):
        sample = (
            f'deployment_total{{environment="production",service="{service}",status="success"}} 1.0'
        )
        assert sample in body
    assert "using the embedded defaults (history store .safeship/history.db" in err
