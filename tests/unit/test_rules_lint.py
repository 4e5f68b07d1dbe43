"""`safeship rules lint`: rule defects promtool lets through, each with file, rule and line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from safeship.cli import lint_cmd
from safeship.cli.lint_cmd import lint
from safeship.config import PrometheusSettings
from safeship.prometheus.client import PrometheusClient
from safeship.rules.lint import (
    Finding,
    RulesFileError,
    lint_files,
    lint_rules,
    load_rules,
    metric_types,
    parse_expr,
    parse_rules,
    result_labels,
    template_labels,
)

Handler = Callable[[httpx.Request], httpx.Response]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def checks(findings: list[Finding]) -> list[tuple[str | None, str]]:
    return [(f.rule, f.check) for f in findings]


def alert(expr: str, *, extra: str = "", for_: str = "5m", summary: str = "s") -> str:
    return (
        "groups:\n  - name: g\n    rules:\n      - alert: A\n"
        f"        expr: '{expr}'\n        for: {for_}\n"
        f"        labels:\n          severity: warning\n{extra}"
        f"        annotations:\n          summary: '{summary}'\n"
    )


def lint_text(text: str, **kwargs: object) -> list[Finding]:
    return lint_rules(parse_rules(text, "t.yml"), **kwargs)  # type: ignore[arg-type]


# --- the original plan's defects ----------------------------------------------------


def test_plan_defects_both_reported_with_the_rule_line() -> None:
    findings = lint_files([fixture("plan_defects.yml")])
    assert checks(findings) == [
        ("DeploymentFailureRateHigh", "template-label"),
        ("DeploymentFrequencyHigh", "rate-per-hour"),
    ]
    template, per_hour = findings
    assert template.line == 6
    assert template.group == "deployments"
    assert "{{ $labels.environment }}" in template.message
    assert "by (environment)" in template.message
    assert per_hour.line == 14
    assert "rate() is per second; compare increase(...[1h]) for a count per hour" in (
        per_hour.message
    )
    assert "7200 per hour" in per_hour.message


def test_clean_rules_have_no_findings() -> None:
    assert lint_files([fixture("clean.yml")]) == []


# --- check 1: template labels the aggregation drops -----------------------------------


def test_template_labels_dropped_by_by_without_and_one_sided_aggregation() -> None:
    findings = lint_files([fixture("template_labels.yml")])
    assert checks(findings) == [
        ("ByOtherLabel", "template-label"),
        ("WithoutTheLabel", "template-label"),
        ("OneSideAggregatedByIt", "template-label"),
    ]
    assert "labels.env" in findings[0].message
    assert "`sum by (service)`" in findings[0].message
    assert "{{ $labels.pod }}" in findings[1].message


@pytest.mark.parametrize(
    "expr",
    [
        "rate(http_requests_total[5m]) > 1",  # no aggregation: every label survives
        "sum by (environment) (rate(x_total[5m])) > 1",
        "sum(rate(x_total[5m])) by (environment, service) > 1",
        "sum without (pod) (rate(x_total[5m])) > 1",
        "topk(3, rate(x_total[5m])) > 1",  # topk returns its input series
        "label_replace(sum(rate(x_total[5m])), `environment`, `prod`, ``, ``) > 1",
        "sum(rate(x_total[5m])) > 1 or rate(y_total[5m]) > 1",  # kept by the `or` side
        "sum by (environment) (rate(x_total[5m])) / ignoring (status) group_left "
        "sum by (environment, status) (rate(y_total[5m])) > 1",
        "unknown_function(sum(rate(x_total[5m]))) > 1",  # not understood: kept
    ],
)
def test_template_label_not_reported_when_the_label_may_survive(expr: str) -> None:
    text = alert(expr.replace("'", "''"), summary="{{ $labels.environment }}")
    assert [f for f in lint_text(text) if f.check == "template-label"] == []


@pytest.mark.parametrize(
    ("expr", "dropped"),
    [
        ("sum(x)", {"environment", "job"}),
        ("sum by (a) (x) / sum by (a, b) (y)", {"b", "c"}),
        ("sum without (b) (x)", {"b"}),
        ("x / on (a) y", {"b"}),
        ("histogram_quantile(0.9, sum by (le, a) (rate(h_bucket[5m])))", {"le", "b"}),
        ('count_values("version", build_info)', {"job"}),
    ],
)
def test_result_labels_drops(expr: str, dropped: set[str]) -> None:
    labels = result_labels(parse_expr(expr))
    assert {label for label in dropped if labels.drops(label)} == dropped
    assert not labels.drops("a") or expr.startswith(("sum(", "count_values"))


def test_template_labels_reads_every_spelling_once() -> None:
    text = '{{ $labels.a }} {{$labels.b}} {{ index $labels "c" }} {{ .Labels.d }} {{ $labels.a }}'
    assert template_labels(text) == ["a", "b", "c", "d"]


# --- check 2: rate of a gauge -------------------------------------------------------


def test_rate_and_increase_of_gauge_named_metrics_look_like_gauges() -> None:
    findings = lint_files([fixture("gauges.yml")])
    assert checks(findings) == [
        ("MemoryGrowing", "rate-of-gauge"),
        ("QueueGrowing", "rate-of-gauge"),
    ]
    assert "process_resident_memory_bytes, which looks like a gauge" in findings[0].message
    assert findings[1].message.startswith("increase() of queue_depth")


def test_metadata_overrides_naming_conventions() -> None:
    types = metric_types(
        {
            "process_resident_memory_bytes": [{"type": "counter", "help": "", "unit": ""}],
            "requests_total": [{"type": "gauge", "help": "", "unit": ""}],
            "latency_seconds": [{"type": "histogram", "help": "", "unit": ""}],
        }
    )
    ok = lint_text(alert("rate(process_resident_memory_bytes[5m]) > 1"), types=types)
    assert ok == []
    bad = lint_text(alert("rate(requests_total[5m]) > 1"), types=types)
    assert checks(bad) == [("A", "rate-of-gauge")]
    assert "a gauge (Prometheus metadata)" in bad[0].message
    histogram = lint_text(alert("rate(latency_seconds_bucket[5m]) > 1"), types=types)
    assert histogram == []


# --- check 3: short ranges ----------------------------------------------------------


def test_range_under_twice_the_scrape_interval() -> None:
    findings = lint_files([fixture("short_range.yml")])
    assert checks(findings) == [("ErrorsNow", "short-range")]
    assert "(20s) is under twice the scrape interval (15s)" in findings[0].message
    assert lint_files([fixture("short_range.yml")], scrape_interval=10) == []
    longer = lint_files([fixture("clean.yml")], scrape_interval=180)
    assert {f.check for f in longer} == {"short-range"}


# --- check 4: `for` -----------------------------------------------------------------


def test_alerts_without_for_and_absent_without_for() -> None:
    findings = lint_files([fixture("missing_for.yml")])
    assert checks(findings) == [
        ("InstanceDown", "missing-for"),
        ("MetricsAbsent", "absent-without-for"),
    ]
    assert "missed scrape" in findings[1].message


def test_for_zero_counts_as_missing() -> None:
    assert checks(lint_text(alert("up == 0", for_="0s"))) == [("A", "missing-for")]


# --- check 5: no comparison ---------------------------------------------------------


def test_expression_without_comparison_always_fires() -> None:
    findings = lint_files([fixture("no_comparison.yml")])
    assert checks(findings) == [
        ("ErrorRatio", "no-comparison"),
        ("ErrorsAsBool", "no-comparison"),
    ]
    assert "always fires" in findings[0].message


@pytest.mark.parametrize(
    "expr",
    [
        "(up == 0)",
        "rate(x_total[5m]) > 1 and on (job) up == 1",
        "up unless on (job) maintenance",
        "count(up == 0) > 1",
        'absent(up{job="a"}) or absent(up{job="b"})',
        "sum(rate(x_total[5m])) > 0.5 * sum(rate(y_total[5m]))",
    ],
)
def test_comparisons_not_only_at_the_root_are_understood(expr: str) -> None:
    findings = lint_text(alert(expr.replace("'", "''"), for_="10m"))
    if expr.startswith("up unless"):
        assert checks(findings) == [("A", "no-comparison")]
    else:
        assert findings == []


# --- check 6: severity and summary --------------------------------------------------


def test_missing_or_unknown_severity_and_missing_summary() -> None:
    findings = lint_files([fixture("severity_summary.yml")])
    assert checks(findings) == [
        ("NoSeverity", "missing-severity"),
        ("PageSeverity", "bad-severity"),
        ("NoSummary", "missing-summary"),
    ]
    assert "'page'" in findings[1].message


# --- check 7: duplicates ------------------------------------------------------------


def test_duplicate_alert_names_across_groups_but_not_other_severities() -> None:
    findings = lint_files([fixture("duplicates.yml")])
    assert checks(findings) == [("InstanceDown", "duplicate-alert")]
    assert findings[0].group == "second"
    assert "duplicates.yml:5 (group first)" in findings[0].message


def test_duplicate_alert_names_across_files() -> None:
    findings = lint_files([fixture("clean.yml"), fixture("plan_defects.yml")])
    duplicates = [f for f in findings if f.check == "duplicate-alert"]
    assert [(f.file, f.rule) for f in duplicates] == [
        (fixture("plan_defects.yml"), "DeploymentFailureRateHigh"),
        (fixture("plan_defects.yml"), "DeploymentFrequencyHigh"),
    ]


# --- check 8: per-second rate vs count per hour -------------------------------------


@pytest.mark.parametrize(
    ("expr", "reported"),
    [
        ("sum(rate(rollback_total[1h])) > 3", True),
        ("2 < rate(smoke_test_failures_total[30m])", True),
        ("sum(rate(deployment_total[1h])) > 0.5", False),  # not above 1
        ("sum(rate(deployment_total[1h])) * 3600 > 2", False),  # made per hour
        ("sum(increase(deployment_total[1h])) > 2", False),
        ("sum(rate(http_requests_total[5m])) > 20", False),  # requests are not rare
    ],
)
def test_rate_of_rare_event_counter_compared_with_hourly_count(expr: str, reported: bool) -> None:
    findings = lint_text(alert(expr))
    assert (("A", "rate-per-hour") in checks(findings)) is reported


# --- reading rule files -------------------------------------------------------------


def test_invalid_yaml_names_file_and_line() -> None:
    with pytest.raises(RulesFileError) as caught:
        load_rules(fixture("invalid.yml"))
    assert caught.value.line == 7
    assert str(caught.value).startswith(fixture("invalid.yml") + ":7: invalid YAML")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("rules: []\n", 1, "no `groups:`"),
        ("groups:\n  - name: g\n    rules:\n      - expr: up\n", 4, "neither `alert` nor"),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n", 4, "has no `expr`"),
        ("groups: {a: 1}\n", 1, "should be a list"),
    ],
)
def test_not_a_rule_file_names_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(RulesFileError) as caught:
        parse_rules(text, "r.yml")
    assert caught.value.line == line
    assert problem in caught.value.message


def test_recording_rules_get_only_the_expression_checks() -> None:
    text = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: rate(queue[10s])\n"
    assert [f.check for f in lint_text(text)] == ["rate-of-gauge", "short-range"]


# --- the command --------------------------------------------------------------------


def test_cli_text_output_has_file_line_and_exits_1() -> None:
    result = CliRunner().invoke(lint, [fixture("plan_defects.yml")])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"{fixture('plan_defects.yml')}:6: deployments/DeploymentFailureRateHigh: "
    )
    assert lines[0].endswith("[template-label]")
    assert lines[1].startswith(f"{fixture('plan_defects.yml')}:14: ")
    assert lines[-1] == "2 finding(s) in 2 rules in 1 file(s)"


def test_cli_clean_file_exits_0() -> None:
    result = CliRunner().invoke(lint, [fixture("clean.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: no findings")


def test_cli_json_shape() -> None:
    result = CliRunner().invoke(
        lint, ["--json", "--scrape-interval", "30", fixture("short_range.yml")]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1
    assert data["files"] == [fixture("short_range.yml")]
    assert data["rules"] == 1
    assert data["metadata"] is False
    [finding] = data["findings"]
    assert set(finding) == {"file", "group", "rule", "line", "check", "message"}
    assert finding["line"] == 5
    assert finding["check"] == "short-range"
    assert "scrape interval (30s)" in finding["message"]


def test_cli_invalid_yaml_exits_2_naming_file_and_line() -> None:
    result = CliRunner().invoke(lint, [fixture("clean.yml"), fixture("invalid.yml")])
    assert result.exit_code == 2
    assert f"{fixture('invalid.yml')}:7: invalid YAML" in result.stderr
    assert result.stdout == ""


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(lint, [str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "nope.yml: cannot read" in result.stderr


def mock_prometheus(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> None:
    """The command's PrometheusClient answers from `handler`, without sleeping between retries."""

    def client(settings: PrometheusSettings, **kwargs: Any) -> PrometheusClient:
        transport = httpx.MockTransport(handler)
        return PrometheusClient(settings, transport=transport, sleep=lambda _s: None, **kwargs)

    monkeypatch.setattr(lint_cmd, "PrometheusClient", client)


def test_cli_asks_prometheus_metadata_for_gauges(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/metadata"
        body = {"status": "success", "data": {"queue_depth": [{"type": "counter"}]}}
        return httpx.Response(200, json=body)

    mock_prometheus(monkeypatch, handler)
    result = CliRunner().invoke(
        lint, ["--json", "--prometheus-url", "http://prom:9090", fixture("gauges.yml")]
    )
    data = json.loads(result.stdout)
    assert data["metadata"] is True
    assert [f["rule"] for f in data["findings"]] == ["MemoryGrowing"]  # queue_depth: counter


def test_cli_unreachable_prometheus_warns_and_falls_back_to_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    mock_prometheus(monkeypatch, handler)
    result = CliRunner().invoke(
        lint, ["--prometheus-url", "http://prom:9090", fixture("gauges.yml")]
    )
    assert result.exit_code == 1
    assert "warning: no metric metadata from http://prom:9090" in result.stderr
    assert result.stdout.count("looks like a gauge") == 2
