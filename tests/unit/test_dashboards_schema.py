"""Dashboards against Grafana's own JSON schemas (grafana-foundation-sdk, packaged as data).

Generated dashboards validate with no problem; a hand-written one that misses a
required field gets a problem naming the file, the panel (title and id) or variable,
and the field; `dashboards generate` and `dashboards push` refuse schema-invalid ones.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from safeship.cli.dashboards_generate import generate
from safeship.config import GrafanaSettings
from safeship.grafana import dashboards as dashboards_module
from safeship.grafana.client import GrafanaClient
from safeship.grafana.dashboards import (
    DASHBOARDS_DIR,
    FILE_NAMES,
    all_dashboards,
    render,
    validate_dashboard,
)
from safeship.grafana.schema import PANEL_TYPES_WITH_SCHEMA, SCHEMA_FILES, schema_problems
from safeship.grafana.sync import push
from safeship.testing import MemoryStore
from safeship.testing_grafana import GrafanaDouble

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = resources.files("safeship.grafana") / "schemas"


def _overview() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render(all_dashboards()[0]))
    return data


def _panel(data: dict[str, Any], panel_type: str) -> dict[str, Any]:
    panel: dict[str, Any] = next(p for p in data["panels"] if p["type"] == panel_type)
    return panel


def _variable(data: dict[str, Any], name: str) -> dict[str, Any]:
    variable: dict[str, Any] = next(v for v in data["templating"]["list"] if v["name"] == name)
    return variable


def _table_panel() -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "inspect": False}, "unit": "short"},
            "overrides": [],
        },
        "gridPos": {"h": 8, "w": 24, "x": 0, "y": 40},
        "id": 50,
        "options": {"frameIndex": 0, "showHeader": True},
        "targets": [{"expr": "up", "refId": "A"}],
        "title": "Targets",
        "type": "table",
    }


# --- The schema files ------------------------------------------------------------------


def test_the_schemas_are_package_data_and_unchanged_from_upstream() -> None:
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "grafana/grafana-foundation-sdk" in readme
    assert "f178d5a42a8915fdda9235e97ad93881e3f94fef" in readme
    assert "Apache-2.0" in readme
    listed = {
        name: digest
        for digest, name in re.findall(r"^\s*([0-9a-f]{64})  (\S+\.json)$", readme, re.M)
    }
    assert sorted(listed) == sorted(SCHEMA_FILES.values())
    for name, digest in listed.items():
        content = (SCHEMAS / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest, name
        assert json.loads(content)["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert sorted(PANEL_TYPES_WITH_SCHEMA) == ["gauge", "stat", "table", "timeseries"]


# --- Generated dashboards ---------------------------------------------------------------


@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_every_generated_dashboard_validates_with_no_problem(dashboard: Any) -> None:
    data = json.loads(render(dashboard))
    assert schema_problems(data, "generated.json") == []
    assert validate_dashboard(data, "generated.json") == []


@pytest.mark.parametrize("name", sorted(FILE_NAMES.values()))
def test_every_committed_dashboard_file_validates_with_no_problem(name: str) -> None:
    path = ROOT / DASHBOARDS_DIR / name
    data = json.loads(path.read_text(encoding="utf-8"))
    assert schema_problems(data, str(path)) == []


def test_generated_panels_carry_every_field_their_panel_schema_requires() -> None:
    types = set()
    for dashboard in all_dashboards():
        for panel in json.loads(render(dashboard))["panels"]:
            types.add(panel["type"])
            options = panel["options"]
            if panel["type"] == "timeseries":
                assert set(options["legend"]) >= {"calcs", "displayMode", "placement", "showLegend"}
                assert set(options["tooltip"]) >= {"mode", "sort"}
            else:
                assert "orientation" in options
                assert options["reduceOptions"]["calcs"] == ["lastNotNull"]
    assert types == {"timeseries", "stat", "gauge"}


# --- Hand-written dashboards: located problems -----------------------------------------


def test_a_timeseries_without_show_legend_names_file_panel_and_field() -> None:
    data = _overview()
    panel = _panel(data, "timeseries")
    del panel["options"]["legend"]["showLegend"]
    problems = validate_dashboard(data, "dashboards/mine.json")
    assert problems == [
        f"dashboards/mine.json: panel {panel['title']!r} (id {panel['id']}): "
        "options.legend: 'showLegend' is a required property"
    ]


def test_a_datasource_variable_without_current_value_names_file_variable_and_field() -> None:
    data = _overview()
    del _variable(data, "datasource")["current"]["value"]
    assert validate_dashboard(data, "dashboards/mine.json") == [
        "dashboards/mine.json: variable 'datasource': current: 'value' is a required property"
    ]


def test_a_stat_without_orientation_and_a_gauge_with_a_wrong_type() -> None:
    data = _overview()
    stat = _panel(data, "stat")
    del stat["options"]["orientation"]
    gauge = _panel(data, "gauge")
    gauge["options"]["minVizWidth"] = "wide"
    problems = schema_problems(data, "x.json")
    assert problems == [
        f"x.json: panel {gauge['title']!r} (id {gauge['id']}): "
        "options.minVizWidth: 'wide' is not of type 'integer'",
        f"x.json: panel {stat['title']!r} (id {stat['id']}): "
        "options: 'orientation' is a required property",
    ]


def test_a_panel_without_options_is_told_what_its_type_requires() -> None:
    data = _overview()
    panel = _panel(data, "timeseries")
    del panel["options"]
    problems = schema_problems(data, "x.json")
    assert problems == [
        f"x.json: panel {panel['title']!r} (id {panel['id']}): "
        f"options: {field!r} is a required property"
        for field in ("legend", "tooltip")
    ]


def test_unknown_options_and_fields_are_named() -> None:
    data = _overview()
    panel = _panel(data, "timeseries")
    panel["options"]["legend"]["colour"] = "red"
    panel["fieldConfig"]["defaults"]["custom"] = {"lineWidth": "thick"}
    panel["gridPos"] = {"h": 8, "w": 12, "x": 0}
    data["refreshRate"] = "1m"
    problems = schema_problems(data, "x.json")
    where = f"x.json: panel {panel['title']!r} (id {panel['id']})"
    assert problems == [
        "x.json: Additional properties are not allowed ('refreshRate' was unexpected)",
        f"{where}: fieldConfig.defaults.custom.lineWidth: 'thick' is not of type 'number'",
        f"{where}: gridPos: 'y' is a required property",
        f"{where}: options.legend: Additional properties are not allowed ('colour' was unexpected)",
    ]


def test_a_dashboard_without_the_fields_grafana_requires() -> None:
    data = _overview()
    for key in ("schemaVersion", "templating", "annotations"):
        del data[key]
    assert schema_problems(data, "x.json") == [
        f"x.json: {key!r} is a required property"
        for key in ("schemaVersion", "templating", "annotations")
    ]


def test_a_table_panel_is_checked_against_the_table_schema() -> None:
    data = _overview()
    data["panels"].append(_table_panel())
    assert schema_problems(data, "x.json") == []
    table = data["panels"][-1]
    del table["fieldConfig"]["defaults"]["custom"]["inspect"]
    del table["options"]["showHeader"]
    assert schema_problems(data, "x.json") == [
        "x.json: panel 'Targets' (id 50): fieldConfig.defaults.custom: "
        "'inspect' is a required property",
        "x.json: panel 'Targets' (id 50): options: 'showHeader' is a required property",
    ]


def test_other_panel_types_are_checked_against_the_dashboard_schema_only() -> None:
    data = _overview()
    text = {
        "gridPos": {"h": 4, "w": 24, "x": 0, "y": 40},
        "id": 60,
        "options": {"content": "# Notes", "mode": "markdown"},
        "title": "Notes",
        "type": "text",
        "targets": [{"expr": "up", "refId": "A"}],
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
    }
    data["panels"].append(text)
    assert schema_problems(data, "x.json") == []
    text["transparent"] = "yes"
    assert schema_problems(data, "x.json") == [
        "x.json: panel 'Notes' (id 60): transparent: 'yes' is not of type 'boolean'"
    ]


def test_panels_inside_rows_are_checked_and_rows_against_the_row_schema() -> None:
    data = _overview()
    inner = copy.deepcopy(_panel(data, "timeseries"))
    inner["id"] = 70
    del inner["options"]["tooltip"]["sort"]
    data["panels"].append({"id": 71, "type": "row", "title": "More", "panels": [inner]})
    assert schema_problems(data, "x.json") == [
        "x.json: panel 'More' (id 71): 'collapsed' is a required property",
        f"x.json: panel {inner['title']!r} (id 70): options.tooltip: 'sort' is a required property",
    ]


def test_variable_queries_may_be_strings_or_objects_as_in_grafanas_cue() -> None:
    data = _overview()
    environment = _variable(data, "environment")
    assert isinstance(environment["query"], dict)  # as the generated ones are
    environment["query"] = environment["definition"]
    assert schema_problems(data, "x.json") == []
    environment["query"] = 5
    assert schema_problems(data, "x.json") == [
        "x.json: variable 'environment': query: 5 is not valid under any of the given schemas"
    ]


def test_a_string_datasource_is_left_to_the_hard_coded_check() -> None:
    data = _overview()
    _panel(data, "stat")["datasource"] = "${datasource}"
    assert validate_dashboard(data, "x.json") == []
    _panel(data, "stat")["datasource"] = "Prometheus"
    [problem] = validate_dashboard(data, "x.json")
    assert "hard-coded datasource 'Prometheus'" in problem


def test_long_values_are_shortened_in_problems() -> None:
    data = _overview()
    _panel(data, "gauge")["options"]["sizing"] = "x" * 500
    [problem] = schema_problems(data, "x.json")
    assert len(problem) < 300
    assert "options.sizing" in problem
    assert "is not one of ['auto', 'manual']" in problem


@pytest.mark.parametrize("data", [None, [], "x", 3, {"panels": "x"}, {"templating": {"list": 4}}])
def test_any_json_gets_located_problems(data: object) -> None:
    problems = schema_problems(data, "x.json")
    assert problems
    assert all(p.startswith("x.json: ") for p in problems)


# --- generate and push -----------------------------------------------------------------


def test_generate_and_generate_check_refuse_a_dashboard_grafanas_schema_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    written = runner.invoke(generate, ["--dir", str(tmp_path)], standalone_mode=False)
    assert written.return_value == 0, written.output
    checked = runner.invoke(generate, ["--check", "--dir", str(tmp_path)], standalone_mode=False)
    assert checked.return_value == 0, checked.output

    def legend_without_show_legend(panel_type: str) -> dict[str, object]:
        return {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }

    monkeypatch.setattr(dashboards_module, "_options", legend_without_show_legend)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    for args in (["--check"], []):
        result = runner.invoke(generate, [*args, "--dir", str(tmp_path)], standalone_mode=False)
        assert result.return_value == 1
        assert (
            f"{tmp_path / 'api-performance.json'}: panel 'Throughput' (id 2): "
            "options.legend: 'showLegend' is a required property"
        ) in result.output
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # nothing written


def test_push_refuses_a_schema_invalid_file_before_calling_grafana(tmp_path: Path) -> None:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    data = _overview()
    data["uid"] = "mine"
    del _panel(data, "timeseries")["options"]["legend"]["showLegend"]
    del _variable(data, "datasource")["current"]["value"]
    (folder / "mine.json").write_text(json.dumps(data))
    with GrafanaDouble() as grafana:
        with GrafanaClient(grafana.url, grafana.token, timeout=2.0) as client:
            results = push(
                GrafanaSettings(),
                client,
                MemoryStore(),
                service="checkout",
                deployment_id="D1",
                commit=None,
                base=tmp_path,
            )
        assert [r.status for r in results] == ["invalid"]
        detail = results[0].detail
        assert f"{folder / 'mine.json'}: panel 'Deployment frequency (per hour)' (id 4): " in detail
        assert "options.legend: 'showLegend' is a required property" in detail
        assert "variable 'datasource': current: 'value' is a required property" in detail
        assert all("mine" not in path for _, path in grafana.requests)
        assert grafana.dashboards == {}
