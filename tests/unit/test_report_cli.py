"""`safeship report` end to end: every format, --output, empty history, bad options."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.report.outcomes import TARGETS
from safeship.report.synthetic import generate_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'history.db'}"
    generate_history(url, 400, 20, seed=7, end=time.time())
    return url


@pytest.fixture
def empty(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_json_carries_schema_version_and_every_figure(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "--store", history, "report", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == 1
    assert data["empty"] is False
    assert data["period"]["days"] == pytest.approx(30)
    assert [o["key"] for o in data["outcomes"]] == [t.key for t in TARGETS]
    dora = data["dora"]
    assert dora["environment"] == "production"
    assert dora["deployment_frequency"]["tier"] in ("elite", "high", "medium", "low")
    assert dora["lead_time"]["median_seconds"] > 0
    assert {row["name"] for row in data["by_environment"]} == {"production", "staging"}
    assert len(data["series"]["lead_time_histogram"]) == 11
    assert data["canary_traces"]


def test_markdown_shows_every_target_with_its_value_and_result(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "--store", history, "report", "--format", "markdown")
    assert code == 0
    data = json.loads(_run(capsys, "--store", history, "report", "--format", "json")[1])
    for outcome in data["outcomes"]:
        value = "no data" if outcome["value"] is None else f"{outcome['value']:.1%}"
        line = next(line for line in out.splitlines() if line.startswith(f"| {outcome['name']} |"))
        assert f"| {value} | {outcome['target']} | {outcome['status']} |" in line
    for heading in ("## DORA four keys", "## By service", "## By environment"):
        assert heading in out


def test_table_is_the_default_format(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "--store", history, "report", "--service", "service-01")
    assert code == 0
    assert "DORA four keys" in out
    assert "service-01" in out
    assert "service-02" not in out


def test_html_is_self_contained_with_a_figure_per_plot(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    code, out = _run(
        capsys, "--store", history, "report", "--format", "html", "--output", str(page)
    )
    assert (code, out) == (0, "")
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    plots = re.findall(r'data-plot="([\w-]+)"', html)
    assert {"outcomes", "weekly-frequency", "lead-time", "canary"} <= set(plots)
    assert html.count("<svg") == len(plots)
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", html)


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_empty_history_is_reported_as_such_with_exit_0(
    empty: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "--store", empty, "report", "--format", fmt)
    assert code == 0
    assert "No deployments started in this period." in out


def test_empty_history_as_json(empty: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "--store", empty, "report", "--format", "json", "--since", "7d")
    assert code == 0
    data = json.loads(out)
    assert data["empty"] is True
    assert {o["status"] for o in data["outcomes"]} == {"no data"}


def test_table_output_to_a_file_has_no_colour_codes(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "report.txt"
    assert _run(capsys, "--store", history, "report", "--output", str(target))[0] == 0
    text = target.read_text()
    assert "Outcomes against targets" in text
    assert "\x1b[" not in text


def test_a_bad_period_is_a_usage_error(empty: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--store", empty, "report", "--since", "30d", "--from", "2026-01-01"])
    assert code == 2
    assert "either --since or --from" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_an_output_that_cannot_be_written_is_a_usage_error(
    empty: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "/dev/null/report.out"  # cannot be written, even by root
    code = main(["--store", empty, "report", "--format", fmt, "--output", target])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--output {target}: cannot write the report: Not a directory" in err
    assert "Traceback" not in err
