"""The generated Alertmanager config against the real amtool (Alertmanager 0.25)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from safeship.cli.alertmanager_cmd import alertmanager
from safeship.cli.context import Context
from safeship.cli.exit_codes import ExitCode
from safeship.config import AlertmanagerSettings, Receiver
from safeship.rules.alertmanager import (
    AMTOOL_PACKAGE,
    CONFIG_PATH,
    ROUTES_PATH,
    RoutingCase,
    check_config,
    load_routing_cases,
    render_config,
    verify_route,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / CONFIG_PATH
CASES = load_routing_cases(ROOT / ROUTES_PATH)


@pytest.fixture(autouse=True)
def _amtool() -> None:
    """Skip naming the package, or fail under SAFESHIP_REQUIRE_INTEGRATION=1 (CI)."""
    if shutil.which("amtool") is not None:
        return
    message = (
        f"amtool is not installed (Debian package `{AMTOOL_PACKAGE}`: "
        f"apt-get install {AMTOOL_PACKAGE})"
    )
    if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_committed_config_passes_check_config() -> None:
    result = check_config(COMMITTED)
    assert result.passed, result.output
    assert "SUCCESS" in result.output


@pytest.mark.parametrize(
    "settings",
    [
        AlertmanagerSettings(),
        AlertmanagerSettings(
            pager=Receiver(type="pagerduty", routing_key_file="/run/secrets/pd"),
            chat=Receiver(type="webhook", url="http://chat-bridge.internal:8080/hook"),
            ticket=Receiver(type="email", to="ops@example.com"),
            group_wait="10s",
            group_interval="1m",
            repeat_interval="12h",
        ),
        AlertmanagerSettings(chat=Receiver(type="slack", api_url_file="/run/secrets/slack")),
    ],
    ids=["defaults", "webhook-and-email", "slack-without-channel"],
)
def test_every_receiver_type_passes_check_config(
    settings: AlertmanagerSettings, tmp_path: Path
) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_config(settings), encoding="utf-8")
    result = check_config(path)
    assert result.passed, result.output


@pytest.mark.parametrize("case", CASES, ids=[c.describe() for c in CASES])
def test_routing_case_passes(case: RoutingCase) -> None:
    result = verify_route(case, COMMITTED)
    assert result.passed, f"{case.describe()}: {result.output}"


@pytest.mark.parametrize(
    "case",
    [
        RoutingCase({"alertname": "X", "severity": "critical"}, "chat"),
        RoutingCase({"alertname": "X", "severity": "warning"}, "pager"),
        RoutingCase({"alertname": "X"}, "ticket"),
    ],
    ids=lambda c: c.describe(),
)
def test_a_wrong_expectation_fails(case: RoutingCase) -> None:
    """The route test can fail: amtool exits 1 when the receiver is not the expected one."""
    result = verify_route(case, COMMITTED)
    assert not result.passed
    assert "did not match" in result.output


def test_the_cli_runs_every_case_and_fails_on_a_wrong_one(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        alertmanager,
        ["test", "--file", str(COMMITTED), "--cases", str(ROOT / ROUTES_PATH)],
        obj=Context(None),
        standalone_mode=False,
    )
    assert ok.return_value == ExitCode.OK, ok.output
    assert ok.output.count("ok   ") == len(CASES) + 1  # check-config and each case
    assert f"{len(CASES)}/{len(CASES)} routing cases passed" in ok.output

    wrong = tmp_path / "routes.yml"
    wrong.write_text(
        "- {labels: {severity: info}, receiver: ticket}\n"
        "- {labels: {severity: critical}, receiver: chat}\n",
        encoding="utf-8",
    )
    failed = runner.invoke(
        alertmanager,
        ["test", "--file", str(COMMITTED), "--cases", str(wrong)],
        obj=Context(None),
        standalone_mode=False,
    )
    assert failed.return_value == ExitCode.FAILED, failed.output
    assert 'FAIL {severity="critical"} -> chat' in failed.output
    assert "1/2 routing cases passed" in failed.output


def test_a_broken_config_fails_check_config(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(
        "route: {receiver: ticket}\n"
        "receivers:\n"
        "- name: ticket\n"
        "  webhook_configs: [{url_file: /run/secrets/url}]\n",  # not in 0.25
        encoding="utf-8",
    )
    assert not check_config(broken).passed
