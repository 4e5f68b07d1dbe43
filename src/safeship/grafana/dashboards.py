"""Grafana dashboards as code: typed models rendered to the JSON `POST /api/dashboards/db` takes.

Every panel queries the datasource chosen in the `datasource` template variable
(no datasource uid is hard-coded) and filters by the `environment` and
`service` variables wherever the metric carries those labels.
`safeship dashboards generate` writes the rendered files into `dashboards/`;
`validate_dashboard` checks any dashboard JSON (generated or hand-written)
before it is pushed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safeship.generated import GeneratedFile
from safeship.grafana.schema import panel_location, schema_problems
from safeship.metrics.names import (
    CANARY_ANALYSIS_TOTAL,
    CANARY_TRAFFIC_PERCENTAGE,
    DEPLOYMENT_DURATION_SECONDS,
    DEPLOYMENT_ROLLBACK_TOTAL,
    DEPLOYMENT_TOTAL,
    PROMETHEUS_QUERY_DURATION_SECONDS,
    PROMETHEUS_QUERY_TOTAL,
    SMOKE_TEST_TOTAL,
)

SCHEMA_VERSION = 39
DASHBOARDS_DIR = Path("dashboards")
DATASOURCE_VARIABLE = "${datasource}"
#: Where every panel and query variable points: the datasource the viewer picked.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_VARIABLE}
#: Grafana's own annotation source (not a datasource of the installation).
GRAFANA_ANNOTATIONS: dict[str, str] = {"type": "grafana", "uid": "-- Grafana --"}
#: Pseudo-datasource uids built into Grafana, allowed as they are.
BUILTIN_DATASOURCE_UIDS = frozenset({"-- Grafana --", "-- Mixed --", "-- Dashboard --"})
MAX_UID_LENGTH = 40
GRID_WIDTH = 24

#: The selector filter for metrics labelled with both `environment` and `service`.
FILTER = 'environment=~"$environment", service=~"$service"'
#: prometheus_query_* has no `environment` label.
SERVICE_FILTER = 'service=~"$service"'

PanelType = Literal["timeseries", "stat", "gauge"]
PANEL_TYPES: tuple[str, ...] = ("timeseries", "stat", "gauge")

_UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
_VARIABLE_REF = re.compile(r"^\$(\w+|\{\w+\})$")
_GRID_KEYS = ("h", "w", "x", "y")


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    ref_id: str
    expr: str
    legend_format: str = "__auto"

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": dict(DATASOURCE),
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": self.legend_format,
            "range": True,
            "refId": self.ref_id,
        }


@dataclass(frozen=True)
class GridPos:
    h: int
    w: int
    x: int
    y: int

    def to_json(self) -> dict[str, object]:
        return {"h": self.h, "w": self.w, "x": self.x, "y": self.y}


@dataclass(frozen=True)
class Panel:
    id: int
    type: PanelType
    title: str
    grid_pos: GridPos
    targets: tuple[Target, ...]
    unit: str = "short"
    description: str = ""
    min: float | None = None
    max: float | None = None

    def to_json(self) -> dict[str, object]:
        defaults: dict[str, object] = {"unit": self.unit}
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        return {
            "datasource": dict(DATASOURCE),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": self.grid_pos.to_json(),
            "id": self.id,
            "options": _options(self.type),
            "targets": [target.to_json() for target in self.targets],
            "title": self.title,
            "type": self.type,
        }


def _options(panel_type: PanelType) -> dict[str, object]:
    """Every option the panel type's schema requires (Grafana's defaults where not chosen)."""
    if panel_type == "timeseries":
        return {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel_type == "stat":
        return {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": reduce,
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        }
    return {
        "minVizHeight": 75,
        "minVizWidth": 75,
        "orientation": "auto",
        "reduceOptions": reduce,
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "sizing": "auto",
    }


@dataclass(frozen=True)
class Variable:
    """A template variable: the datasource picker or a label_values() query."""

    name: str
    label: str
    type: Literal["datasource", "query"]
    query: str
    include_all: bool = False
    multi: bool = False

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "hide": 0,
            "includeAll": self.include_all,
            "label": self.label,
            "multi": self.multi,
            "name": self.name,
            "options": [],
            "query": self.query,
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": self.type,
        }
        if self.type == "datasource":
            # Nothing chosen (no installation's datasource uid): Grafana picks its default
            # Prometheus datasource, else the first one, when the dashboard loads.
            data["current"] = {"text": "", "value": ""}
        else:
            data["allValue"] = ".*"
            data["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
            data["datasource"] = dict(DATASOURCE)
            data["definition"] = self.query
            data["query"] = {"query": self.query, "refId": "PrometheusVariableQueryEditor"}
            data["refresh"] = 2  # on time-range change
            data["sort"] = 1
        return data


VARIABLES: tuple[Variable, ...] = (
    Variable("datasource", "Data source", "datasource", "prometheus"),
    Variable(
        "environment",
        "Environment",
        "query",
        f"label_values({DEPLOYMENT_TOTAL}, environment)",
        include_all=True,
        multi=True,
    ),
    Variable(
        "service",
        "Service",
        "query",
        f'label_values({DEPLOYMENT_TOTAL}{{environment=~"$environment"}}, service)',
        include_all=True,
        multi=True,
    ),
)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ("safeship",)
    variables: tuple[Variable, ...] = VARIABLES
    description: str = ""
    schema_version: int = SCHEMA_VERSION
    time_from: str = "now-6h"
    time_to: str = "now"
    refresh: str = "30s"
    timezone: str = "browser"

    def to_json(self) -> dict[str, object]:
        """The dashboard object (without `id`, so Grafana matches it by uid)."""
        return {
            "annotations": {"list": [_builtin_annotation()]},
            "description": self.description,
            "editable": True,
            "graphTooltip": 1,
            "links": [],
            "panels": [panel.to_json() for panel in self.panels],
            "refresh": self.refresh,
            "schemaVersion": self.schema_version,
            "tags": list(self.tags),
            "templating": {"list": [variable.to_json() for variable in self.variables]},
            "time": {"from": self.time_from, "to": self.time_to},
            "timepicker": {},
            "timezone": self.timezone,
            "title": self.title,
            "uid": self.uid,
            "version": 0,
        }


def _builtin_annotation() -> dict[str, object]:
    return {
        "builtIn": 1,
        "datasource": dict(GRAFANA_ANNOTATIONS),
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


# --- Layout ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    type: PanelType
    title: str
    targets: tuple[Target, ...]
    unit: str
    w: int
    h: int
    description: str = ""
    min: float | None = None
    max: float | None = None


def _layout(specs: tuple[_Spec, ...]) -> tuple[Panel, ...]:
    """Panels numbered from 1, placed left to right and wrapped at the grid width."""
    panels = []
    x = y = row_height = 0
    for number, spec in enumerate(specs, start=1):
        if x + spec.w > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        panels.append(
            Panel(
                id=number,
                type=spec.type,
                title=spec.title,
                grid_pos=GridPos(h=spec.h, w=spec.w, x=x, y=y),
                targets=spec.targets,
                unit=spec.unit,
                description=spec.description,
                min=spec.min,
                max=spec.max,
            )
        )
        x += spec.w
        row_height = max(row_height, spec.h)
    return tuple(panels)


def _sel(metric: str, extra: str = "", base: str = FILTER) -> str:
    return f"{metric}{{{base}{', ' + extra if extra else ''}}}"


def _ratio(numerator: str, denominator: str) -> str:
    """`numerator / denominator`, with no result (not NaN) where the denominator is 0."""
    return f"{numerator}\n/\n({denominator} > 0)"


def _quantile(q: float, bucket_metric: str, by: str, window: str, base: str = FILTER) -> str:
    return (
        f"histogram_quantile({q:g}, sum by ({by}) "
        f"(rate({_sel(bucket_metric, base=base)}[{window}])))"
    )


# --- The three dashboards -----------------------------------------------------------


def deployment_overview() -> Dashboard:
    finished = f"sum(increase({_sel(DEPLOYMENT_TOTAL)}[$__range]))"
    success = _sel(DEPLOYMENT_TOTAL, 'status="success"')
    succeeded = f"sum(increase({success}[$__range]))"
    rolled_back = f"sum(increase({_sel(DEPLOYMENT_ROLLBACK_TOTAL)}[$__range]))"
    duration = f"{DEPLOYMENT_DURATION_SECONDS}_bucket"
    query_duration = f"{PROMETHEUS_QUERY_DURATION_SECONDS}_bucket"
    specs = (
        _Spec(
            "gauge",
            "Deployment success rate",
            (Target("A", _ratio(succeeded, finished), "success rate"),),
            "percentunit",
            8,
            6,
            "Share of finished deployments (time range) with status success.",
            0,
            1,
        ),
        _Spec(
            "stat",
            "Rollback rate",
            (Target("A", _ratio(rolled_back, finished), "rollback rate"),),
            "percentunit",
            8,
            6,
            "Rollbacks per finished deployment over the time range.",
        ),
        _Spec(
            "stat",
            "Smoke tests",
            (
                Target(
                    "A",
                    f"sum by (result) (increase({_sel(SMOKE_TEST_TOTAL)}[$__range]))",
                    "{{result}}",
                ),
            ),
            "short",
            8,
            6,
            "Smoke tests passed and failed over the time range.",
        ),
        _Spec(
            "timeseries",
            "Deployment frequency (per hour)",
            (
                Target(
                    "A",
                    f"sum by (environment, status) (increase({_sel(DEPLOYMENT_TOTAL)}[1h]))",
                    "{{environment}} {{status}}",
                ),
            ),
            "short",
            12,
            8,
            "Finished deployments in the preceding hour.",
        ),
        _Spec(
            "timeseries",
            "Deployment duration p50 / p95",
            (
                Target(
                    "A", _quantile(0.5, duration, "le, environment", "1h"), "p50 {{environment}}"
                ),
                Target(
                    "B", _quantile(0.95, duration, "le, environment", "1h"), "p95 {{environment}}"
                ),
            ),
            "s",
            12,
            8,
            "From the deployment_duration_seconds histogram, over the preceding hour.",
        ),
        _Spec(
            "timeseries",
            "Canary traffic percentage",
            (
                Target(
                    "A",
                    "max by (environment, service, deployment_id) "
                    f"({_sel(CANARY_TRAFFIC_PERCENTAGE)})",
                    "{{service}} {{environment}} {{deployment_id}}",
                ),
            ),
            "percent",
            12,
            8,
            "Share of traffic routed to the canary during each rollout.",
            0,
            100,
        ),
        _Spec(
            "timeseries",
            "Canary analysis results",
            (
                Target(
                    "A",
                    "sum by (check, result) "
                    f"(increase({_sel(CANARY_ANALYSIS_TOTAL)}[$__rate_interval]))",
                    "{{check}} {{result}}",
                ),
            ),
            "short",
            12,
            8,
            "Canary-analysis check results (pass, fail, inconclusive, error).",
        ),
        _Spec(
            "timeseries",
            "Prometheus queries by result",
            (
                Target(
                    "A",
                    "sum by (result) (rate("
                    f"{_sel(PROMETHEUS_QUERY_TOTAL, base=SERVICE_FILTER)}[$__rate_interval]))",
                    "{{result}}",
                ),
            ),
            "reqps",
            12,
            8,
            "Queries safeship sent to Prometheus (filtered by service only).",
        ),
        _Spec(
            "timeseries",
            "Prometheus query duration p95",
            (
                Target(
                    "A",
                    _quantile(
                        0.95, query_duration, "le, workflow", "$__rate_interval", SERVICE_FILTER
                    ),
                    "p95 {{workflow}}",
                ),
            ),
            "s",
            12,
            8,
            "From the prometheus_query_duration_seconds histogram, by workflow.",
        ),
    )
    return Dashboard(
        uid="safeship-deployment-overview",
        title="safeship / Deployment overview",
        tags=("safeship", "deployments"),
        description="Deployments, rollbacks, canary traffic and analysis, smoke tests.",
        panels=_layout(specs),
    )


def api_performance() -> Dashboard:
    bucket = "http_request_duration_seconds_bucket"
    by = "le, environment, version"
    legend = "{{environment}} {{version}}"
    specs = (
        _Spec(
            "timeseries",
            "Request latency p50 / p95 / p99",
            (
                Target("A", _quantile(0.5, bucket, by, "$__rate_interval"), f"p50 {legend}"),
                Target("B", _quantile(0.95, bucket, by, "$__rate_interval"), f"p95 {legend}"),
                Target("C", _quantile(0.99, bucket, by, "$__rate_interval"), f"p99 {legend}"),
            ),
            "s",
            24,
            9,
            "From the http_request_duration_seconds histogram, by environment and version.",
        ),
        _Spec(
            "timeseries",
            "Throughput",
            (
                Target(
                    "A",
                    "sum by (environment, version) "
                    f"(rate({_sel('http_requests_total')}[$__rate_interval]))",
                    legend,
                ),
            ),
            "reqps",
            24,
            8,
            "Requests per second, by environment and version.",
        ),
    )
    return Dashboard(
        uid="safeship-api-performance",
        title="safeship / API performance",
        tags=("safeship", "api"),
        description="Request latency quantiles and throughput per environment and version.",
        panels=_layout(specs),
    )


def _error_ratio(by: str, window: str, extra: str = "") -> str:
    """5xx share of requests; 0 (not absent) with traffic but no errors, absent without."""
    errors_extra = 'status=~"5.."' + (f", {extra}" if extra else "")
    errors = f"sum by ({by}) (rate({_sel('http_requests_total', errors_extra)}[{window}]))"
    total = f"sum by ({by}) (rate({_sel('http_requests_total', extra)}[{window}]))"
    return _ratio(f"({errors}\nor\n{total} * 0)", total)


def error_rate() -> Dashboard:
    specs = (
        _Spec(
            "gauge",
            "Canary 5xx ratio",
            (Target("A", _error_ratio("track", "$__range", 'track="canary"'), "canary"),),
            "percentunit",
            12,
            6,
            "Share of canary requests answered 5xx over the time range.",
            0,
            1,
        ),
        _Spec(
            "gauge",
            "Stable 5xx ratio",
            (Target("A", _error_ratio("track", "$__range", 'track="stable"'), "stable"),),
            "percentunit",
            12,
            6,
            "Share of stable requests answered 5xx over the time range.",
            0,
            1,
        ),
        _Spec(
            "timeseries",
            "5xx ratio by environment and version",
            (
                Target(
                    "A",
                    _error_ratio("environment, version", "$__rate_interval"),
                    "{{environment}} {{version}}",
                ),
            ),
            "percentunit",
            24,
            8,
            "Share of requests answered 5xx.",
        ),
        _Spec(
            "timeseries",
            "5xx ratio: canary vs stable",
            (
                Target(
                    "A",
                    _error_ratio("environment, track", "$__rate_interval"),
                    "{{environment}} {{track}}",
                ),
            ),
            "percentunit",
            24,
            8,
            "Share of requests answered 5xx, by track (canary or stable).",
        ),
    )
    return Dashboard(
        uid="safeship-error-rate",
        title="safeship / Error rate",
        tags=("safeship", "errors"),
        description="5xx ratios by environment, version and track (canary vs stable).",
        panels=_layout(specs),
    )


def all_dashboards() -> tuple[Dashboard, ...]:
    return (deployment_overview(), api_performance(), error_rate())


#: uid -> file name under dashboards/.
FILE_NAMES: dict[str, str] = {
    "safeship-deployment-overview": "deployment-overview.json",
    "safeship-api-performance": "api-performance.json",
    "safeship-error-rate": "error-rate.json",
}


# --- Rendering and files ----------------------------------------------------------


def render(dashboard: Dashboard) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_files(directory: Path = DASHBOARDS_DIR) -> tuple[GeneratedFile, ...]:
    return tuple(
        GeneratedFile(directory / FILE_NAMES[dashboard.uid], render(dashboard))
        for dashboard in all_dashboards()
    )


def panel_exprs(data: dict[str, object]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of a rendered dashboard."""
    out = []
    for panel in _panels(data):
        for target in _list(panel.get("targets")):
            if isinstance(target, dict) and isinstance(target.get("expr"), str):
                out.append((str(panel.get("title", "")), target["expr"]))
    return out


# --- Validation -------------------------------------------------------------------


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _panels(data: dict[str, object]) -> list[dict[str, object]]:
    """Top-level panels and those nested in (collapsed) rows."""
    out: list[dict[str, object]] = []
    for panel in _list(data.get("panels")):
        if isinstance(panel, dict):
            out.append(panel)
            out.extend(p for p in _list(panel.get("panels")) if isinstance(p, dict))
    return out


def _hard_coded(datasource: object) -> str | None:
    """The hard-coded datasource reference, or None if it is a variable or built-in."""
    if datasource is None:
        return None
    if isinstance(datasource, str):
        ok = bool(_VARIABLE_REF.match(datasource)) or datasource in BUILTIN_DATASOURCE_UIDS
        return None if ok else datasource
    if isinstance(datasource, dict):
        uid = datasource.get("uid")
        if uid is None:
            return None
        if isinstance(uid, str) and (_VARIABLE_REF.match(uid) or uid in BUILTIN_DATASOURCE_UIDS):
            return None
        return str(uid)
    return repr(datasource)


def validate_dashboard(data: object, source: str) -> list[str]:
    """Problems that would make Grafana reject `data` or tie it to one installation.

    `data` is the dashboard object (what goes inside "dashboard" in the API
    request); each problem names `source`, then the panel or variable and the field.
    Besides the checks here (uid, title, datasources, targets, unique panel ids) it
    must conform to Grafana's dashboard and panel schemas (`safeship.grafana.schema`),
    the same check `dashboards generate` applies to what it writes. An empty list
    means it may be pushed.
    """
    if not isinstance(data, dict):
        return [f"{source}: the dashboard is not a JSON object"]
    problems: list[str] = []
    uid = data.get("uid")
    if not isinstance(uid, str) or not uid:
        problems.append(f"{source}: missing or empty uid")
    else:
        if len(uid) > MAX_UID_LENGTH:
            problems.append(f"{source}: uid {uid!r} is longer than {MAX_UID_LENGTH} characters")
        if not _UID_PATTERN.match(uid):
            problems.append(
                f"{source}: uid {uid!r} has characters Grafana rejects (allowed: A-Z a-z 0-9 - _)"
            )
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(f"{source}: missing or empty title")
    panels = data.get("panels", [])
    # The schema check names these too (as `panels` / `panels[i]`); said once, here.
    redundant: tuple[str, ...] = ()
    if not isinstance(panels, list):
        problems.append(f"{source}: panels is not a list")
        redundant = (f"{source}: panels: ",)
    elif any(not isinstance(panel, dict) for panel in panels):
        problems.append(f"{source}: a panel is not a JSON object")
        redundant = (f"{source}: panels[",)
    seen: set[object] = set()
    for panel in _panels(data):
        name = f"{source}: {panel_location(panel)}"
        panel_id = panel.get("id")
        # An id that is not an integer is a schema problem (`id: ... is not of type`).
        if "id" not in panel:
            problems.append(f"{name}: no id")
        elif isinstance(panel_id, int) and not isinstance(panel_id, bool):
            if panel_id in seen:
                problems.append(f"{name}: duplicate panel id {panel_id}")
            seen.add(panel_id)
        if panel.get("type") == "row":
            continue
        if "datasource" not in panel or not panel["datasource"]:
            problems.append(f"{name}: no datasource")
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.append(f"{name}: no targets")
            targets = []
        refs = [panel.get("datasource")]
        for target in targets:
            if not isinstance(target, dict):
                problems.append(f"{name}: a target is not a JSON object")
                continue
            if not isinstance(target.get("expr"), str) or not target["expr"].strip():
                problems.append(f"{name}: target {target.get('refId')!r} has no expr")
            refs.append(target.get("datasource"))
        for ref in refs:
            hard = _hard_coded(ref)
            if hard is not None:
                problems.append(
                    f"{name}: hard-coded datasource {hard!r} (use {DATASOURCE_VARIABLE!r})"
                )
    templating = data.get("templating")
    variables = _list(templating.get("list")) if isinstance(templating, dict) else []
    for variable in variables:
        if isinstance(variable, dict):
            hard = _hard_coded(variable.get("datasource"))
            if hard is not None:
                problems.append(
                    f"{source}: variable {variable.get('name')!r}: hard-coded datasource "
                    f"{hard!r} (use {DATASOURCE_VARIABLE!r})"
                )
    problems.extend(p for p in schema_problems(data, source) if not p.startswith(redundant))
    return problems
