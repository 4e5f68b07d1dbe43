"""Every dashboard query is PromQL that a real Prometheus (2.42) parses and evaluates."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator

import pytest

from safeship.config import PrometheusSettings
from safeship.demo.monitoring import PrometheusServer
from safeship.grafana.dashboards import all_dashboards, panel_exprs, render
from safeship.prometheus.client import PrometheusClient, PromQLError

pytestmark = pytest.mark.integration

#: Grafana's variables, as concrete values a viewer (or Grafana itself) would give them.
SUBSTITUTIONS = {
    "${environment}": ".*",
    "$environment": ".*",
    "${service}": ".*",
    "$service": ".*",
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}


def _substitute(expr: str) -> str:
    for variable in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(variable, SUBSTITUTIONS[variable])
    left = re.findall(r"\$\{?\w+\}?", expr)
    assert not left, f"unsubstituted variables {left} in {expr}"
    return expr


def _queries() -> list[tuple[str, str]]:
    out = []
    for dashboard in all_dashboards():
        data = json.loads(render(dashboard))
        for title, expr in panel_exprs(data):
            out.append((f"{dashboard.uid} / {title}", expr))
        for variable in data["templating"]["list"]:
            definition = variable.get("definition", "")
            found = re.fullmatch(r"label_values\((.+), \w+\)", definition)
            if found:  # the series selector inside label_values() is PromQL too
                out.append((f"{dashboard.uid} / ${variable['name']}", found.group(1)))
    return out


QUERIES = _queries()


@pytest.fixture(scope="module")
def client() -> Iterator[PrometheusClient]:
    if shutil.which("prometheus") is None:
        message = (
            "prometheus is not installed (Debian package `prometheus`: apt-get install prometheus)"
        )
        if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with (
        PrometheusServer() as server,
        PrometheusClient(PrometheusSettings(url=server.url, retries=0)) as prometheus,
    ):
        yield prometheus


def test_there_are_queries_for_every_dashboard() -> None:
    uids = {name.split(" / ")[0] for name, _ in QUERIES}
    assert uids == {d.uid for d in all_dashboards()}
    assert len(QUERIES) >= 20


@pytest.mark.parametrize(("name", "expr"), QUERIES, ids=[name for name, _ in QUERIES])
def test_query_passes_prometheus_syntax_check(
    client: PrometheusClient, name: str, expr: str
) -> None:
    concrete = _substitute(expr)
    formatted = client.format_query(concrete)
    assert formatted
    # Parsing also type-checks; evaluating catches what only shows at query time.
    client.query(concrete)


def test_the_syntax_check_rejects_a_broken_query(client: PrometheusClient) -> None:
    broken = _substitute(QUERIES[0][1]).rstrip(")")
    with pytest.raises(PromQLError):
        client.format_query(broken)
    with pytest.raises(PromQLError):
        client.format_query('rate(http_requests_total{service=~"$service"}[5m])'[:-1])
