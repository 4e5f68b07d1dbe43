"""GitHub Actions output: workflow-command escaping, `$GITHUB_OUTPUT`, the step summary.

Rollouts run in virtual time against the in-memory doubles, so each test drives
the real controller and reads what a workflow run would show.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safeship.ci.github import (
    append_summary,
    escape_data,
    escape_property,
    set_output,
    workflow_command,
)
from safeship.ci.rollout import GitHubRolloutReport
from safeship.ci.summary import MAX_CHART_POINTS, rollout_summary
from safeship.cli.main import main
from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    Hooks,
    LocalRouterSettings,
    ScrapeProviderSettings,
    StoreSettings,
    load_config,
    secret_values,
)
from safeship.rollout.controller import RolloutController
from safeship.rollout.machine import RolloutState
from safeship.rollout.story import rollout_story
from safeship.testing import FakeRouter, MemoryStore, SyntheticProvider, Traffic


def parse_outputs(text: str) -> dict[str, str]:
    """`$GITHUB_OUTPUT` read the way the runner reads it (both forms)."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            else:
                raise AssertionError(f"unterminated heredoc for {name}")
            outputs[name] = "\n".join(value)
        else:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs


def unescape(text: str) -> str:
    """What the runner shows for an escaped workflow-command text."""
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def settings(strategy: CanaryStrategy) -> EnvironmentConfig:
    return EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=strategy,
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )


def rollout(
    canary: Traffic | None = None,
    *,
    version: str = "v2",
    report: GitHubRolloutReport | None = None,
) -> tuple[RolloutState, MemoryStore]:
    """One rollout in virtual time with a report following its events, then finishing."""
    store = MemoryStore()
    clock = VirtualClock()
    router = FakeRouter()
    report = report or GitHubRolloutReport()
    controller = RolloutController(
        settings(CanaryStrategy(steps=(10, 50, 100), hold=60, warmup=5, interval=10)),
        store=store,
        router=router,
        provider=SyntheticProvider(router, clock, rps=100, canary=canary),
        clock=clock,
        on_event=report.on_event,
    )
    state = controller.start(version, deployment_id="d-1")
    report.finish(state, rollout_story(store, state.deployment_id))
    return state, store


# --- escaping -------------------------------------------------------------------------------


def test_data_escapes_percent_first_then_line_breaks() -> None:
    assert escape_data("50%\r\nnext %0A") == "50%25%0D%0Anext %250A"


def test_property_values_also_escape_colon_and_comma() -> None:
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_workflow_command_escapes_message_and_properties() -> None:
    line = workflow_command("error", "rolled back\n::warning::x", title="canary: v2, prod")
    assert line == "::error title=canary%3A v2%2C prod::rolled back%0A::warning::x"
    assert "\n" not in line
    assert workflow_command("endgroup") == "::endgroup::"


# --- outputs and summary files --------------------------------------------------------------


def test_outputs_use_name_value_or_a_heredoc_that_no_value_can_end(
    actions: dict[str, str],
) -> None:
    assert set_output("outcome", "rolled_back")
    assert set_output("detail", "line one\nlow=1\nEOF")
    text = Path(actions["GITHUB_OUTPUT"]).read_text()
    assert text.startswith("outcome=rolled_back\n")
    delimiter = re.search(r"^detail<<(\S+)$", text, re.MULTILINE)
    assert delimiter is not None
    assert delimiter.group(1).startswith("ghadelimiter_")
    assert parse_outputs(text) == {"outcome": "rolled_back", "detail": "line one\nlow=1\nEOF"}


def test_nothing_is_written_outside_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    assert not set_output("outcome", "promoted")
    assert not append_summary("# hello")
    assert GitHubRolloutReport.from_environment(frozenset(), as_json=False) is None
    # The CLI too: `check prometheus` writes prometheus_reachable only inside Actions.
    assert main(["check", "prometheus", "--url", "http://127.0.0.1:9"]) == 0
    assert "::" not in capsys.readouterr().out
    assert not (tmp_path / "output").exists()
    assert not (tmp_path / "summary.md").exists()


# --- a rollout as a workflow run shows it ---------------------------------------------------


def test_promoted_rollout_groups_each_step_and_writes_outputs(
    actions: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = rollout()
    out = capsys.readouterr().out
    groups = [unescape(g) for g in re.findall(r"^::group::(.*)$", out, re.MULTILINE)]
    assert groups == [
        "Prepare v2 for production: hooks and smoke tests",
        "Step 1/3: canary at 10%",
        "Step 2/3: canary at 50%",
    ]
    assert out.count("::endgroup::") == len(groups)
    assert "::error" not in out
    outputs = parse_outputs(Path(actions["GITHUB_OUTPUT"]).read_text())
    assert outputs == {
        "outcome": "promoted",
        "deployment_id": state.deployment_id,
        "weight": "100",
        "reason": "",
        "detail": "",
    }


def test_rollback_is_an_error_annotation_with_its_reason(
    actions: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = rollout(Traffic(error_ratio=0.05))
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "::error title=safeship rollback::d-1 (v2 in production) at 10%25: "
    )
    assert "rolling back (high_error_rate)" in errors[0]
    assert "::group::Rollback of d-1 to 0%" in out
    assert out.count("::group::") == out.count("::endgroup::")
    outputs = parse_outputs(Path(actions["GITHUB_OUTPUT"]).read_text())
    assert (outputs["outcome"], outputs["reason"], outputs["weight"]) == (
        "rolled_back",
        "high_error_rate",
        "0",
    )
    assert outputs["detail"] == state.detail


def test_provider_error_is_a_warning_annotation(
    actions: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    report = GitHubRolloutReport()
    clock = VirtualClock()
    router = FakeRouter()
    provider = SyntheticProvider(router, clock)
    provider.outage = True
    store = MemoryStore()
    controller = RolloutController(
        settings(CanaryStrategy(steps=(10, 100), hold=30, warmup=5, interval=10)),
        store=store,
        router=router,
        provider=provider,
        clock=clock,
        on_event=report.on_event,
    )
    state = controller.start("v2", deployment_id="d-2")
    report.finish(state, rollout_story(store, "d-2"))
    warnings = [line for line in capsys.readouterr().out.splitlines() if "::warning" in line]
    assert warnings
    assert warnings[0] == "::warning title=metrics provider error::provider error: synthetic outage"


def test_summary_has_steps_decisions_with_values_limits_query_and_a_chart(
    actions: dict[str, str],
) -> None:
    rollout(Traffic(error_ratio=0.05))
    summary = Path(actions["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## safeship rollout `d-1`\n")
    assert "**checkout** `v2` → **production**: **rolled_back** (high_error_rate)" in summary
    assert "| 1 | 10% | +0s |" in summary  # reached 10% as soon as the router confirmed it
    assert "| 2 | 50% | - |" in summary
    assert "| 3 | 100% | - |" in summary
    rollback_row = next(line for line in summary.splitlines() if "| rollback | fail |" in line)
    assert re.search(r"\| \d+/\d+ \| 0/\d+ \|", rollback_row)  # canary and baseline errors
    details = summary.split("<details open>", 1)[1].split("</details>", 1)[0]
    assert "rollback (fail)" in details
    check = next(line for line in details.splitlines() if line.startswith("| error_rate"))
    # result, canary, baseline and limit columns, then the statistic's own figures
    cells = [cell.strip() for cell in check.split("|")[1:-1]]
    assert cells[0] == "error_rate (error_rate_sequential)"
    assert cells[1] == "fail"
    assert float(cells[2]) > float(cells[3]) == 0
    assert cells[4] != ""
    assert "e_value=" in cells[5]
    assert "Failures 1 (limit 0)" in details
    assert "```promql\nsynthetic\n```" in details
    chart = summary.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert chart.startswith("xychart-beta\n")
    assert 'y-axis "percent" 0 --> 100' in chart
    series = re.findall(r"^    line \[(.*)\]$", chart, re.MULTILINE)
    assert len(series) == 3
    weights, canary_errors, baseline_errors = ([float(v) for v in s.split(", ")] for s in series)
    labels = re.search(r'^    x-axis "time since start" \[(.*)\]$', chart, re.MULTILINE)
    assert labels is not None
    assert labels.group(1).split(", ") == ['"0s"', '"8s"', '"end 8s"']
    assert len(weights) == len(canary_errors) == len(baseline_errors) == 3
    assert max(weights) == 10
    assert weights[-1] == 0
    assert max(canary_errors) == pytest.approx(5.0)
    assert max(baseline_errors) == 0


def test_long_rollouts_keep_the_chart_to_a_bounded_number_of_points(
    actions: dict[str, str],
) -> None:
    state, store = rollout()
    story = rollout_story(store, state.deployment_id)
    verdicts = [d for d in story["decisions"] if d["inputs"].get("verdict")]
    many = [{**verdicts[0], "at": verdicts[0]["at"] + i} for i in range(500)]
    chart = rollout_summary({**story, "decisions": many}, state.steps).split("```mermaid")[1]
    points = re.search(r"^    line \[(.*)\]$", chart, re.MULTILINE)
    assert points is not None
    assert len(points.group(1).split(", ")) == MAX_CHART_POINTS


def test_no_secret_from_the_config_reaches_outputs_annotations_or_summary(
    actions: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "safeship.yaml"
    path.write_text(
        "service: checkout\nrouter:\n  type: local\n  admin_url: http://127.0.0.1:8081/${TOKEN}\n"
    )
    cfg = load_config(path, env={"TOKEN": "tok-8c1f77e2"})
    secrets = secret_values(cfg)
    assert secrets == {"tok-8c1f77e2"}
    # Suppose the secret leaked into what a rollout records (here: its version).
    rollout(
        Traffic(error_ratio=0.05), version="v2-tok-8c1f77e2", report=GitHubRolloutReport(secrets)
    )
    out = capsys.readouterr().out
    written = [
        out,
        *(Path(actions[f]).read_text() for f in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")),
    ]
    for text in written:
        assert "tok-8c1f77e2" not in text
    assert "v2-***" in written[0]
    assert "v2-***" in written[2]


def test_json_mode_keeps_stdout_clean_and_annotates_on_stderr(
    actions: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    report = GitHubRolloutReport.from_environment(frozenset(), as_json=True)
    assert report is not None
    rollout(Traffic(error_ratio=0.05), report=report)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "::group::" not in captured.err  # no progress lines to fold with --json
    assert captured.err.startswith("::error title=safeship rollback::d-1 ")
    assert Path(actions["GITHUB_OUTPUT"]).read_text().startswith("outcome=rolled_back\n")
