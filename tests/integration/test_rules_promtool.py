"""The generated rules pass promtool's lint and their unit tests (Prometheus 2.42)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from safeship.cli.rules_cmd import rules
from safeship.rules import promtool
from safeship.rules.generate import RULES_FILE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TESTS = sorted((ROOT / ".prometheus" / "tests").glob("*.yml"))


@pytest.fixture(autouse=True)
def _promtool() -> None:
    if shutil.which("promtool") is not None:
        return
    message = "promtool is not installed (Debian package `prometheus`: apt-get install prometheus)"
    if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_rules_pass_lint() -> None:
    result = promtool.check_rules([ROOT / RULES_FILE])
    assert result.ok, result.output
    assert "SUCCESS" in result.output


def test_rule_unit_tests_pass() -> None:
    assert TESTS
    result = promtool.run_tests(TESTS)
    assert result.ok, result.output


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """promtool really compares: a changed expected annotation fails the run."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yml").write_text((ROOT / RULES_FILE).read_text())
    text = (ROOT / ".prometheus" / "tests" / "deployments.yml").read_text()
    broken = tmp_path / "tests" / "deployments.yml"
    broken.write_text(text.replace("50% of the deployments", "60% of the deployments"))
    result = promtool.run_tests([broken])
    assert not result.ok
    assert "DeploymentHighErrorRate" in result.output


def _alert_tests() -> list[dict[str, Any]]:
    found = []
    for path in TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            found.extend(group.get("alert_rule_test", []))
    return found


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    data = yaml.safe_load((ROOT / RULES_FILE).read_text())
    names = {r["alert"] for g in data["groups"] for r in g["rules"] if "alert" in r}
    cases = _alert_tests()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a non-firing test"


def test_firing_cases_check_every_annotation() -> None:
    for case in _alert_tests():
        for alert in case.get("exp_alerts") or []:
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
            assert "severity" in alert["exp_labels"]


def test_cli_rules_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(rules, ["test"], standalone_mode=False)
    assert result.return_value == 0, result.output
    assert "SUCCESS" in result.output


def test_cli_rules_test_fails_on_a_failing_test(tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text((ROOT / RULES_FILE).read_text())
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "rule_files: [alerts.yml]\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series: [{series: 'up{job=\"x\"}', values: '1x60'}]\n"
        "    alert_rule_test:\n"
        "      - {eval_time: 40m, alertname: DeploymentMetricsAbsent, exp_alerts: []}\n"
    )
    result = CliRunner().invoke(
        rules,
        ["test", "--rules-file", str(tmp_path / "alerts.yml"), str(bad)],
        standalone_mode=False,
    )
    assert result.return_value == 1
    assert "DeploymentMetricsAbsent" in result.output


def test_missing_promtool_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(promtool.PromtoolMissingError, match="Debian package prometheus"):
        promtool.check_rules([ROOT / RULES_FILE])
