"""The promtool unit tests `rules generate` writes fit whatever the config says, and bite.

A user's thresholds, `for`s, SLOs, push job and runbook URL differ from the
defaults the hand-written tests in .prometheus/tests fit; the generated file
must pass under each, check every alert that can fire, and fail when the rules
no longer do what the config asked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from safeship.config import AlertingSettings
from safeship.generated import write
from safeship.rules import promtool
from safeship.rules.generate import generated_files
from safeship.rules.unit_tests import TESTS_FILE, humanize_duration, render

pytestmark = pytest.mark.integration

SETTINGS = {
    "defaults": {},
    "odd thresholds": {
        "runbook_url": "https://wiki.example.com/runbooks/{alertname}?from=alert",
        "environments": {
            "prod-eu_west": {"error_rate": 0.00007, "latency_p95_seconds": 0.123425, "for": "90s"},
            "qa": {"error_rate": 0.333, "latency_p95_seconds": 7, "for": "0s"},
            "edge": {"error_rate": 1, "latency_p95_seconds": 4000, "for": "1h"},
        },
        "slos": [
            {"name": "loose", "objective": 0.95},
            {"name": "strict", "objective": 0.99999},
            {
                "name": "fast_paths",
                "kind": "latency",
                "objective": 0.9,
                "latency_threshold_seconds": 2,
            },
        ],
    },
    "no slos": {"environments": {"production": {}}, "slos": []},
}


@pytest.fixture(autouse=True)
def _promtool() -> None:
    if shutil.which("promtool") is not None:
        return
    message = "promtool is not installed (Debian package `prometheus`: apt-get install prometheus)"
    if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _generate(root: Path, settings: dict[str, object], job: str = "deploys") -> None:
    write(generated_files(AlertingSettings.model_validate(settings), root, job, kubernetes=False))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_generated_tests_pass_and_cover_every_alert(tmp_path: Path, name: str) -> None:
    _generate(tmp_path, SETTINGS[name])
    result = promtool.run_tests([tmp_path / TESTS_FILE])
    assert result.ok, result.output
    rules = yaml.safe_load((tmp_path / ".prometheus/alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    cases = [
        case
        for group in yaml.safe_load((tmp_path / TESTS_FILE).read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    # Only a 100% error-ratio limit cannot be exceeded.
    cannot = {"HighErrorRateEdge"} if name == "odd thresholds" else set()
    assert alerts - firing == cannot
    assert quiet == alerts


def test_they_fail_when_the_rules_no_longer_fit_the_config(tmp_path: Path) -> None:
    """Tests generated for 1% must fail against rules that alert only from 5%."""
    _generate(tmp_path, {"environments": {"production": {"error_rate": 0.01}}})
    tests = (tmp_path / TESTS_FILE).read_text()
    _generate(tmp_path, {"environments": {"production": {"error_rate": 0.05}}})
    (tmp_path / TESTS_FILE).write_text(tests)
    result = promtool.run_tests([tmp_path / TESTS_FILE])
    assert not result.ok
    assert "HighErrorRateProduction" in result.output


def test_they_fail_on_another_runbook_or_job(tmp_path: Path) -> None:
    _generate(tmp_path, {}, job="one")
    tests = (tmp_path / TESTS_FILE).read_text()
    _generate(tmp_path, {"runbook_url": "https://runbooks.example.com/{alertname}"}, job="two")
    (tmp_path / TESTS_FILE).write_text(tests)
    result = promtool.run_tests([tmp_path / TESTS_FILE])
    assert not result.ok
    assert "DeploymentMetricsAbsent" in result.output


def test_the_printed_values_are_prometheus_own() -> None:
    """humanizeDuration and humanizePercentage as Prometheus 2.42 prints them."""
    assert humanize_duration(4200) == "1h 10m 0s"
    assert humanize_duration(93784) == "1d 2h 3m 4s"
    assert humanize_duration(1.5) == "1.5s"
    assert humanize_duration(0.975) == "975ms"
    assert humanize_duration(0.0000012) == "1.2us"
    assert humanize_duration(0) == "0s"
    labels = {"service": "api"}
    assert render("{{ $value | humanizePercentage }} of {{ $labels.service }}", labels, 0.012) == (
        "1.2% of api"
    )
    assert render('{{ $value | printf "%.0f" }} times', labels, 3.0) == "3 times"


@pytest.mark.parametrize(
    ("broken", "into"),
    [
        (") > 0.01\n", ") > 0\n"),  # pages on any single 5xx
        (") > 0.01\n", ") >= 0.001\n"),
        ('status=~"5.."}[5m]))', 'status=~"5..|4.."}[5m]))'),  # 4xx counted
        ("> 0.5\n", "> 0.4\n"),  # a tighter latency limit than the config's
    ],
)
def test_they_fail_on_rules_that_fire_short_of_the_limit(
    tmp_path: Path, broken: str, into: str
) -> None:
    """A just-under-the-limit input (with 4xx traffic) must stay quiet, so a rule that
    fires below the config's limit, or counts the client's errors, fails its tests."""
    _generate(tmp_path, {"environments": {"production": {}}, "slos": []})
    rules = tmp_path / ".prometheus/alerts.yml"
    text = rules.read_text()
    assert broken in text
    rules.write_text(text.replace(broken, into, 1))
    result = promtool.run_tests([tmp_path / TESTS_FILE])
    assert not result.ok, f"{broken!r} -> {into!r} still passes"


def test_staging_burning_its_budget_pages_nobody(tmp_path: Path) -> None:
    _generate(tmp_path, {"environments": {"staging": {}, "prod": {}}})
    tests = yaml.safe_load((tmp_path / TESTS_FILE).read_text())["tests"]
    burns = [
        g
        for g in tests
        if any(c["alertname"].endswith("FastBurn") for c in g["alert_rule_test"])
        and any('environment="staging"' in s["series"] for s in g["input_series"])
    ]
    assert burns, "no case feeds staging a burning budget"
    assert all(not c["exp_alerts"] for g in burns for c in g["alert_rule_test"])
    result = promtool.run_tests([tmp_path / TESTS_FILE])
    assert result.ok, result.output
