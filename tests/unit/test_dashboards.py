"""The Grafana dashboards as code: not stale, valid, portable, and filtered by the variables."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from safeship.cli.dashboards_generate import generate
from safeship.generated import stale
from safeship.grafana.dashboards import (
    DASHBOARDS_DIR,
    DATASOURCE,
    GridPos,
    Panel,
    Target,
    all_dashboards,
    generated_files,
    panel_exprs,
    render,
    validate_dashboard,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "deployment-overview.json": "safeship-deployment-overview",
    "api-performance.json": "safeship-api-performance",
    "error-rate.json": "safeship-error-rate",
}

#: The fixed label names of every metric the dashboards may query.
METRIC_LABELS: dict[str, set[str]] = {
    "deployment_total": {"service", "environment", "status"},
    "deployment_rollback_total": {"service", "environment", "reason"},
    "deployment_duration_seconds_bucket": {"service", "environment", "le"},
    "smoke_test_total": {"service", "environment", "result"},
    "prometheus_query_total": {"service", "workflow", "result"},
    "prometheus_query_duration_seconds_bucket": {"service", "workflow", "le"},
    "canary_analysis_total": {"service", "environment", "check", "result"},
    "canary_traffic_percentage": {"service", "environment", "deployment_id"},
    "http_requests_total": {"service", "environment", "version", "track", "status"},
    "http_request_duration_seconds_bucket": {"service", "environment", "version", "track", "le"},
}
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / DASHBOARDS_DIR / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(params=sorted(FILES))
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def _valid() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render(all_dashboards()[0]))
    return data


# --- Generated files -----------------------------------------------------------------


def test_generated_files_are_not_stale() -> None:
    files = generated_files(ROOT / DASHBOARDS_DIR)
    assert [file.path.name for file in files] == list(FILES)
    assert stale(files) == [], "run `safeship dashboards generate` and commit the result"


def test_rendering_is_deterministic_sorted_and_newline_terminated() -> None:
    for one, two in zip(all_dashboards(), all_dashboards(), strict=True):
        text = render(one)
        assert text == render(two)
        assert text.endswith("}\n")
        assert not text.endswith("\n\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_uids_are_stable_and_match_the_file_names() -> None:
    assert [d.uid for d in all_dashboards()] == list(FILES.values())
    for name, uid in FILES.items():
        assert _load(name)["uid"] == uid


def test_cli_generate_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "out"
    checked = runner.invoke(generate, ["--check", "--dir", str(target)], standalone_mode=False)
    assert checked.return_value == 1
    assert "stale" in checked.output
    assert "deployment-overview.json" in checked.output
    written = runner.invoke(generate, ["--dir", str(target)], standalone_mode=False)
    assert written.return_value == 0, written.output
    for name in FILES:
        assert (target / name).read_text() == (ROOT / DASHBOARDS_DIR / name).read_text()
    again = runner.invoke(generate, ["--dir", str(target)], standalone_mode=False)
    assert again.output.count("unchanged") == 3
    checked = runner.invoke(generate, ["--check", "--dir", str(target)], standalone_mode=False)
    assert checked.return_value == 0
    (target / "error-rate.json").write_text("{}\n")
    checked = runner.invoke(generate, ["--check", "--dir", str(target)], standalone_mode=False)
    assert checked.return_value == 1
    assert "error-rate.json" in checked.output
    assert "api-performance.json" not in checked.output
    assert (target / "error-rate.json").read_text() == "{}\n"  # --check writes nothing


# --- Schema as Grafana expects it ------------------------------------------------------


def test_every_dashboard_passes_validation(dashboard: dict[str, Any]) -> None:
    assert validate_dashboard(dashboard, dashboard["uid"]) == []


def test_dashboard_schema(dashboard: dict[str, Any]) -> None:
    assert "id" not in dashboard
    assert isinstance(dashboard["uid"], str)
    assert isinstance(dashboard["title"], str)
    assert dashboard["title"]
    assert isinstance(dashboard["tags"], list)
    assert "safeship" in dashboard["tags"]
    assert all(isinstance(tag, str) for tag in dashboard["tags"])
    assert dashboard["schemaVersion"] == 39
    assert dashboard["version"] == 0
    assert isinstance(dashboard["timezone"], str)
    assert set(dashboard["time"]) == {"from", "to"}
    assert all(isinstance(v, str) for v in dashboard["time"].values())
    assert isinstance(dashboard["refresh"], str)
    assert isinstance(dashboard["panels"], list)
    assert dashboard["panels"]
    [annotation] = dashboard["annotations"]["list"]
    assert annotation["builtIn"] == 1
    assert annotation["type"] == "dashboard"
    assert annotation["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}


def test_panel_schema(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert isinstance(panel["id"], int)
        assert panel["type"] in {"timeseries", "stat", "gauge"}
        assert isinstance(panel["title"], str)
        assert panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert all(type(grid[key]) is int for key in grid)
        assert grid["h"] > 0
        assert grid["w"] > 0
        assert grid["x"] >= 0
        assert grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24
        assert panel["datasource"] == DATASOURCE
        assert isinstance(panel["fieldConfig"]["defaults"]["unit"], str)
        assert panel["targets"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert isinstance(target["refId"], str)
            assert target["refId"]
            assert isinstance(target["expr"], str)
            assert target["expr"].strip()
            assert isinstance(target["legendFormat"], str)
            assert target["datasource"] == DATASOURCE


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_templating_schema(dashboard: dict[str, Any]) -> None:
    variables = dashboard["templating"]["list"]
    names = [variable["name"] for variable in variables]
    assert len(names) == len(set(names))
    assert names == ["datasource", "environment", "service"]
    by_name = {variable["name"]: variable for variable in variables}
    assert by_name["datasource"]["type"] == "datasource"
    assert by_name["datasource"]["query"] == "prometheus"
    for name in ("environment", "service"):
        variable = by_name[name]
        assert variable["type"] == "query"
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["query"]["query"] == variable["definition"]
        assert variable["definition"].startswith("label_values(deployment_total")
        assert variable["definition"].endswith(f", {name})")
    assert "$environment" in by_name["service"]["definition"]


# --- Portability and filters -----------------------------------------------------------


def _datasource_refs(node: object) -> list[object]:
    """Every value of a "datasource" key, anywhere in the document."""
    if isinstance(node, dict):
        found = [node["datasource"]] if "datasource" in node else []
        for value in node.values():
            found.extend(_datasource_refs(value))
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _datasource_refs(item)]
    return []


def test_no_datasource_uid_is_hard_coded(dashboard: dict[str, Any]) -> None:
    refs = _datasource_refs(dashboard)
    assert refs
    for ref in refs:
        assert ref in (DATASOURCE, {"type": "grafana", "uid": "-- Grafana --"}), ref


def _selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    out = []
    for metric, body in SELECTOR.findall(expr):
        matchers: dict[str, tuple[str, str]] = {}
        for part in filter(None, (p.strip() for p in body.split(","))):
            found = MATCHER.fullmatch(part)
            assert found, f"cannot parse matcher {part!r} in {expr}"
            matchers[found.group(1)] = (found.group(2), found.group(3))
        out.append((metric, matchers))
    return out


def test_every_query_filters_by_environment_and_service(dashboard: dict[str, Any]) -> None:
    exprs = panel_exprs(dashboard)
    assert exprs
    for title, expr in exprs:
        selectors = _selectors(expr)
        assert selectors, f"{title}: no metric selector in {expr}"
        for metric, matchers in selectors:
            assert metric in METRIC_LABELS, f"{title}: unknown metric {metric}"
            labels = METRIC_LABELS[metric]
            assert set(matchers) <= labels, (
                f"{title}: {metric} has no label {set(matchers) - labels}"
            )
            for variable in ("environment", "service"):
                if variable in labels:
                    assert matchers.get(variable) == ("=~", f"${variable}"), f"{title}: {expr}"


def test_required_panels_are_present() -> None:
    wanted = {
        "safeship-deployment-overview": [
            "deployment_total",
            "deployment_rollback_total",
            "increase(deployment_total{",
            "deployment_duration_seconds_bucket",
            "canary_traffic_percentage",
            "smoke_test_total",
            "prometheus_query_total",
            "prometheus_query_duration_seconds_bucket",
            "canary_analysis_total",
        ],
        "safeship-api-performance": [
            "histogram_quantile(0.5,",
            "histogram_quantile(0.95,",
            "histogram_quantile(0.99,",
            "by (le, environment, version)",
            "sum by (environment, version) (rate(http_requests_total{",
        ],
        "safeship-error-rate": ['status=~"5.."', "by (environment, version)", "track"],
    }
    for dashboard in all_dashboards():
        text = "\n".join(expr for _, expr in panel_exprs(json.loads(render(dashboard))))
        for piece in wanted[dashboard.uid]:
            assert piece in text, f"{dashboard.uid}: {piece}"
    overview = json.loads(render(all_dashboards()[0]))
    assert any("[1h]" in expr and "deployment_total{" in expr for _, expr in panel_exprs(overview))


def test_ratios_are_guarded_against_zero_denominators() -> None:
    for dashboard in all_dashboards():
        for _, expr in panel_exprs(json.loads(render(dashboard))):
            if "\n/\n" in expr:
                assert expr.rstrip().endswith("> 0)"), expr


# --- validate_dashboard on bad input ---------------------------------------------------


def _problems(data: object) -> str:
    problems = validate_dashboard(data, "bad.json")
    assert problems
    assert all(problem.startswith("bad.json") for problem in problems)
    return "\n".join(problems)


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_validate_rejects_non_objects(data: object) -> None:
    assert "not a JSON object" in _problems(data)


@pytest.mark.parametrize(
    ("uid", "message"),
    [
        (None, "missing or empty uid"),
        ("", "missing or empty uid"),
        (7, "missing or empty uid"),
        ("x" * 41, "longer than 40"),
        ("has space", "characters Grafana rejects"),
        ("a/b", "characters Grafana rejects"),
    ],
)
def test_validate_reports_bad_uids(uid: object, message: str) -> None:
    data = _valid()
    data["uid"] = uid
    assert message in _problems(data)


def test_validate_accepts_a_40_character_uid() -> None:
    data = _valid()
    data["uid"] = "a-" + "b_" * 19
    assert len(data["uid"]) == 40
    assert validate_dashboard(data, "ok.json") == []


@pytest.mark.parametrize("title", [None, "", "   "])
def test_validate_reports_missing_title(title: object) -> None:
    data = _valid()
    data["title"] = title
    assert "missing or empty title" in _problems(data)


def test_validate_reports_panel_without_datasource() -> None:
    data = _valid()
    del data["panels"][0]["datasource"]
    assert "no datasource" in _problems(data)


@pytest.mark.parametrize("targets", [None, []])
def test_validate_reports_panel_without_targets(targets: object) -> None:
    data = _valid()
    data["panels"][1]["targets"] = targets
    assert "no targets" in _problems(data)


def test_validate_reports_target_without_expr() -> None:
    data = _valid()
    del data["panels"][0]["targets"][0]["expr"]
    assert "has no expr" in _problems(data)


def test_validate_reports_duplicate_panel_ids() -> None:
    data = _valid()
    data["panels"][2]["id"] = data["panels"][0]["id"]
    assert "duplicate panel id 1" in _problems(data)


def test_validate_reports_duplicate_ids_inside_rows() -> None:
    data = _valid()
    row = {"id": 99, "type": "row", "title": "r", "panels": [copy.deepcopy(data["panels"][0])]}
    data["panels"].append(row)
    assert "duplicate panel id 1" in _problems(data)


def test_validate_reports_non_list_panels() -> None:
    data = _valid()
    data["panels"] = {"a": 1}
    assert "panels is not a list" in _problems(data)


@pytest.mark.parametrize(
    "where",
    ["panel", "target", "variable", "panel-string"],
)
def test_validate_reports_hard_coded_datasources(where: str) -> None:
    data = _valid()
    if where == "panel":
        data["panels"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    elif where == "target":
        data["panels"][0]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "abc"}
    elif where == "variable":
        data["templating"]["list"][1]["datasource"] = {"type": "prometheus", "uid": "abc"}
    else:
        data["panels"][0]["datasource"] = "Prometheus"
    assert "hard-coded datasource" in _problems(data)


def test_validate_accepts_other_variable_spellings() -> None:
    data = _valid()
    data["panels"][0]["datasource"] = {"type": "prometheus", "uid": "$datasource"}
    data["panels"][1]["datasource"] = "${datasource}"
    assert validate_dashboard(data, "ok.json") == []


def test_validate_reports_every_problem_at_once() -> None:
    data = _valid()
    data["uid"] = ""
    data["title"] = ""
    del data["panels"][0]["datasource"]
    data["panels"][1]["targets"] = []
    data["panels"][2]["id"] = 1
    text = _problems(data)
    for message in ("uid", "title", "no datasource", "no targets", "duplicate panel id"):
        assert message in text


def test_models_render_panels_as_grafana_expects() -> None:
    panel = Panel(
        id=5,
        type="stat",
        title="T",
        grid_pos=GridPos(h=4, w=6, x=0, y=0),
        targets=(Target("A", "up", "{{instance}}"),),
        unit="s",
    )
    data = panel.to_json()
    assert data["id"] == 5
    assert data["gridPos"] == {"h": 4, "w": 6, "x": 0, "y": 0}
    assert data["targets"] == [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": "up",
            "legendFormat": "{{instance}}",
            "range": True,
            "refId": "A",
        }
    ]
    assert data["fieldConfig"] == {"defaults": {"unit": "s"}, "overrides": []}
