"""`safeship check prometheus` against a real Prometheus scraping the sample service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PrometheusServer
from safeship.demo.service import start_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scraped(prometheus_installed: None) -> Iterator[PrometheusServer]:
    """One Prometheus scraping a stable and a canary with traffic, shared by this module."""
    with (
        PrometheusServer(scrape_interval=1.0) as prom,
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary,
        LoadGenerator(stable.url, rps=40),
        LoadGenerator(canary.url, rps=10),
    ):
        addresses = (stable.url.removeprefix("http://"), canary.url.removeprefix("http://"))
        prom.add_targets(*addresses)
        prom.wait_for_targets(*addresses)
        time.sleep(3)  # a few scrapes with traffic in them
        yield prom


def write_config(tmp_path: Path, url: str | None, provider_extra: str = "") -> Path:
    path = tmp_path / "safeship.yaml"
    prometheus = f"prometheus:\n  url: {url}\n" if url else ""
    path.write_text(
        "service: checkout\n"
        "environments:\n  production: {}\n"
        f"provider:\n  type: prometheus\n{provider_extra}"
        f"{prometheus}"
    )
    return path


def run_check(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_URL", "GITHUB_ACTIONS")}
    return subprocess.run(
        [sys.executable, "-m", "safeship", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**base, **(env or {})},
    )


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    report = json.loads(result.stdout)
    return {f["subject"]: f for f in report["findings"]}


def test_good_config_reports_every_query_returning_data(
    scraped: PrometheusServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, scraped.url)
    result = run_check("--config", str(config), "check", "prometheus", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["prometheus_reachable"] is True
    assert report["version"].startswith("2.")
    by_subject = findings(result)
    for track in ("baseline", "canary"):
        for kind in ("requests", "errors", "latency"):
            assert by_subject[f"production {track} {kind}"]["status"] == "ok"


def test_misspelt_metric_is_reported_as_absent(scraped: PrometheusServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, scraped.url, "  requests_metric: http_request_total\n")
    result = run_check("--config", str(config), "check", "prometheus", "--json", cwd=tmp_path)
    assert result.returncode == 1
    finding = findings(result)["production baseline requests"]
    assert finding["status"] == "fail"
    assert "metric http_request_total is absent" in finding["message"]


def test_wrong_label_value_is_reported_with_the_values_that_exist(
    scraped: PrometheusServer, tmp_path: Path
) -> None:
    extra = "  labels: {service: checkout, environment: prod}\n"
    config = write_config(tmp_path, scraped.url, extra)
    result = run_check("--config", str(config), "check", "prometheus", cwd=tmp_path)
    assert result.returncode == 1
    assert 'environment="prod" matches nothing' in result.stdout
    assert "values with the other matchers are: production" in result.stdout


def test_missing_label_is_reported_with_the_labels_that_exist(
    scraped: PrometheusServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, scraped.url, "  error_label: code\n")
    result = run_check("--config", str(config), "check", "prometheus", "--json", cwd=tmp_path)
    assert result.returncode == 1
    finding = findings(result)["production canary errors"]
    assert "has a label `code`" in finding["message"]
    assert "status" in finding["message"]


def test_counter_without_rate_is_flagged(scraped: PrometheusServer, tmp_path: Path) -> None:
    extra = "  queries:\n    requests: 'sum(http_requests_total{ {{ selector }} })'\n"
    config = write_config(tmp_path, scraped.url, extra)
    result = run_check("--config", str(config), "check", "prometheus", "--json", cwd=tmp_path)
    counters = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "counter"]
    assert counters
    assert (
        "http_requests_total is a counter used without rate()/increase()" in counters[0]["message"]
    )


def test_short_window_for_the_scrape_interval_is_flagged(
    scraped: PrometheusServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, scraped.url)
    config.write_text(config.read_text() + "canary:\n  interval: 1\n  hold: 30\n")
    result = run_check("--config", str(config), "check", "prometheus", "--json", cwd=tmp_path)
    windows = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "window"]
    assert "shorter than 2x the scrape interval (1s)" in windows[0]["message"]


def test_no_url_degrades_gracefully_and_tells_github_actions(tmp_path: Path) -> None:
    output = tmp_path / "github_output"
    output.touch()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output)}
    result = run_check("check", "prometheus", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "prometheus_reachable=false" in result.stdout
    assert output.read_text() == "prometheus_reachable=false\n"
    strict = run_check("check", "prometheus", "--strict", cwd=tmp_path, env=env)
    assert strict.returncode == 3


def test_unreachable_prometheus_warns_and_exits_0_unless_strict(tmp_path: Path) -> None:
    env = {"PROMETHEUS_URL": "http://127.0.0.1:9"}
    result = run_check("check", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["prometheus_reachable"] is False
    assert report["findings"][0]["status"] == "warn"
    assert "unreachable" in report["findings"][0]["message"]
    assert run_check("check", "--strict", cwd=tmp_path, env=env).returncode == 3


def test_rule_files_are_checked_with_promtool(prometheus_installed: None, tmp_path: Path) -> None:
    rules = tmp_path / ".prometheus" / "alerts.yml"
    rules.parent.mkdir()
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n")
    good = run_check("check", "prometheus", "--json", cwd=tmp_path)
    assert findings(good)[".prometheus/alerts.yml"]["status"] == "ok"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
    bad = run_check("check", "prometheus", "--json", cwd=tmp_path)
    assert bad.returncode == 1
    assert "promtool check rules failed" in findings(bad)[".prometheus/alerts.yml"]["message"]


def test_a_wrong_path_prefix_is_named_once_in_the_message(
    scraped: PrometheusServer, tmp_path: Path
) -> None:
    """The URL's path prefix is part of the request path: printed twice, it hid the mistake."""
    result = run_check("check", "--url", f"{scraped.url}/prom", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{scraped.url}/prom/api/v1/status/buildinfo: HTTP 404" in result.stdout
    assert "/prom/prom/" not in result.stdout
    assert "check prometheus.url (a path prefix?)" in result.stdout


def test_a_rule_file_the_config_names_must_exist(tmp_path: Path) -> None:
    """A listed rule file that is not there was skipped in silence; only the default may be."""
    config = tmp_path / "safeship.yaml"
    config.write_text(
        "service: checkout\nprometheus:\n  retries: 0\n"
        "  rule_files: [.prometheus/alerts.yml, .prometheus/alert.yml]\n"
    )
    (tmp_path / ".prometheus").mkdir()
    (tmp_path / ".prometheus" / "alerts.yml").write_text("groups: []\n")
    result = run_check("check", "prometheus", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "  FAIL  .prometheus/alert.yml: prometheus.rule_files[1]: no such file in "
        f"{tmp_path} (rule files are read from the working directory): fix the entry, or "
        "write the file (`safeship rules generate` writes .prometheus/alerts.yml)"
    ) in result.stdout
    assert "FAIL  .prometheus/alerts.yml" not in result.stdout

    config.write_text("service: checkout\nprometheus:\n  retries: 0\n")  # the default entry
    result = run_check("check", "prometheus", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / ".prometheus" / "alerts.yml").unlink()
    result = run_check("check", "prometheus", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule_files" not in result.stdout
