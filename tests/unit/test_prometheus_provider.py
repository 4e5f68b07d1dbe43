"""The Prometheus provider: query rendering, escaping, and no data never read as a pass."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from safeship.analysis import Result, evaluate
from safeship.config import (
    CanaryStrategy,
    PrometheusProviderSettings,
    PrometheusQueries,
    PrometheusSettings,
)
from safeship.errors import ProviderError
from safeship.placement import Placement, SlotVersion
from safeship.prometheus.client import PrometheusClient
from safeship.providers.interface import Window
from safeship.providers.prometheus import PrometheusProvider, escape_label_value, format_window

WINDOW = Window(1700000000.0, 1700000042.3)
PLACEMENT = Placement(SlotVersion("green", None, "v2"), SlotVersion("blue", None, "v1"))
Answer = Callable[[str], list[tuple[dict[str, str], str]]]


def provider(
    answer: Answer, settings: PrometheusProviderSettings | None = None
) -> PrometheusProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        result = [{"metric": m, "value": [WINDOW.end, v]} for m, v in answer(query)]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, json=body)

    client = PrometheusClient(
        PrometheusSettings(url="http://prom.test", retries=0),
        transport=httpx.MockTransport(handler),
    )
    made = PrometheusProvider(
        settings or PrometheusProviderSettings(),
        client,
        service="checkout",
        environment="production",
    )
    made.follow(PLACEMENT)
    return made


def healthy(query: str) -> list[tuple[dict[str, str], str]]:
    """A service with traffic and no errors: the 5xx selector matches no series."""
    if "resets(" in query:
        return [({}, "0")]
    if query.startswith("count("):
        return [({}, "4")]
    if "=~" in query:
        return []
    if "_bucket" in query:
        return [({"le": "0.05"}, "900"), ({"le": "0.1"}, "1000"), ({"le": "+Inf"}, "1000")]
    return [({}, "1000")]


def test_default_queries_select_version_and_window_since_step() -> None:
    p = provider(healthy)
    m = p.measure(WINDOW)
    assert m.queries["canary.requests"] == (
        'sum(increase(http_requests_total{ service="checkout", environment="production", '
        'version="v2" }[43s]))'
    )
    assert 'version="v1"' in m.queries["baseline.errors"]
    assert 'status=~"5.."' in m.queries["baseline.errors"]
    assert m.queries["canary.latency"].startswith("sum by (le) (increase(")


def test_no_error_series_with_the_error_label_present_is_zero_errors() -> None:
    m = provider(healthy).measure(WINDOW)
    assert m.canary.errors == 0
    assert "canary.errors_label_probe" in m.queries
    assert evaluate(m, CanaryStrategy(min_requests=100)).result is Result.PASS


def test_no_error_series_and_no_error_label_is_unknown_never_a_pass() -> None:
    def misspelt_label(query: str) -> list[tuple[dict[str, str], str]]:
        return [] if query.startswith("count(") else healthy(query)

    m = provider(misspelt_label).measure(WINDOW)
    assert math.isnan(m.canary.errors)
    verdict = evaluate(m, CanaryStrategy(min_requests=100))
    assert verdict.result is Result.INCONCLUSIVE


def test_empty_requests_is_no_data_never_a_pass() -> None:
    m = provider(lambda q: []).measure(WINDOW)
    assert m.canary.requests == 0
    assert m.canary.latency_buckets == ()
    assert evaluate(m, CanaryStrategy()).result is Result.INCONCLUSIVE


def test_nan_figures_are_inconclusive_never_a_pass() -> None:
    def nan(query: str) -> list[tuple[dict[str, str], str]]:
        if "_bucket" in query:
            return [({"le": "0.1"}, "NaN"), ({"le": "+Inf"}, "NaN")]
        return [({}, "NaN")]

    m = provider(nan).measure(WINDOW)
    assert evaluate(m, CanaryStrategy()).result is Result.INCONCLUSIVE
    assert m.canary.latency_buckets == ()


def test_custom_errors_query_with_no_result_is_unknown() -> None:
    settings = PrometheusProviderSettings(
        queries=PrometheusQueries(errors="sum(rate(errors_total{ {{ selector }} }[{{ window }}]))")
    )
    m = provider(lambda q: [] if "errors_total" in q else healthy(q), settings).measure(WINDOW)
    assert math.isnan(m.canary.errors)
    assert "canary.errors_label_probe" not in m.queries


def test_promql_error_becomes_a_provider_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "unknown function"}
        return httpx.Response(400, json=body)

    client = PrometheusClient(
        PrometheusSettings(url="http://prom.test", retries=0),
        transport=httpx.MockTransport(handler),
    )
    p = PrometheusProvider(
        PrometheusProviderSettings(), client, service="checkout", environment="production"
    )
    p.follow(PLACEMENT)
    with pytest.raises(ProviderError, match="unknown function"):
        p.measure(WINDOW)


def test_label_values_cannot_inject_promql() -> None:
    settings = PrometheusProviderSettings()
    p = provider(healthy, settings)
    hostile = PrometheusProvider(
        settings, p.client, service="checkout", environment='prod"} or vector(1) #\\'
    )
    hostile.follow(PLACEMENT)
    query = hostile.queries.all("canary", 10)["requests"]
    assert 'environment="prod\\"} or vector(1) #\\\\"' in query
    unescaped = re.sub(r"\\.", "", query)
    assert unescaped.count('"') == 6  # three matchers, each value one quoted string


def test_escape_label_value_escapes_quotes_backslashes_and_newlines() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_window_is_whole_seconds_rounded_up() -> None:
    assert format_window(42.3) == "43s"
    assert format_window(0.2) == "1s"


def test_templates_must_use_the_selector() -> None:
    with pytest.raises(ValueError, match="selector"):
        PrometheusQueries(requests="sum(rate(x[{{ window }}]))")


def test_templates_reject_unknown_variables() -> None:
    with pytest.raises(ValueError, match="unknown template variable"):
        PrometheusQueries(requests="sum(x{ {{ selector }} }[{{ windw }}])")


def test_restarts_are_read_with_resets_per_target() -> None:
    def restarting(query: str) -> list[tuple[dict[str, str], str]]:
        if "resets(" in query:
            return [({}, "3")] if 'version="v2"' in query else [({}, "0")]
        return healthy(query)

    m = provider(restarting).measure(WINDOW)

    assert (m.canary.resets, m.baseline.resets) == (3, 0)
    assert m.queries["canary.resets"] == (
        'sum(max by (instance) (resets(http_requests_total{ service="checkout", '
        'environment="production", version="v2" }[43s])))'
    )
    verdict = evaluate(m, CanaryStrategy(min_requests=100))
    assert verdict.urgent == "crash_loop"


def test_request_series_without_the_error_label_are_refused_with_the_reason() -> None:
    def unlabelled(query: str) -> list[tuple[dict[str, str], str]]:
        if query.startswith("count(") or "=~" in query:
            return []  # no series has a `status` label
        return healthy(query)

    m = provider(unlabelled).measure(WINDOW)

    assert math.isnan(m.canary.errors)
    assert any("carry no `status` label" in p and "provider.error_label" in p for p in m.problems)
    verdict = evaluate(m, CanaryStrategy(min_requests=100))
    assert verdict.result is Result.INCONCLUSIVE
    assert "carry no `status` label" in verdict.reason


def test_before_any_promotion_the_baseline_is_every_other_version() -> None:
    p = provider(healthy)
    p.follow(Placement(SlotVersion("green", None, "v2"), SlotVersion("blue", None, None)))
    m = p.measure(WINDOW)
    assert 'version="v2"' in m.queries["canary.requests"]
    assert 'version!="v2"' in m.queries["baseline.requests"]


def test_track_labels_when_configured() -> None:
    settings = PrometheusProviderSettings(
        canary_labels={"track": "canary"}, baseline_labels={"track": "stable"}
    )
    m = provider(healthy, settings).measure(WINDOW)
    assert 'track="canary"' in m.queries["canary.requests"]
    assert 'track="stable"' in m.queries["baseline.requests"]


def test_versions_are_read_per_role() -> None:
    def answer(query: str) -> list[tuple[dict[str, str], str]]:
        if query.startswith("group by (version)"):
            return [({"version": "v2" if 'version="v2"' in query else "v1"}, "1")]
        return healthy(query)

    assert provider(answer).versions() == {
        "canary": frozenset({"v2"}),
        "baseline": frozenset({"v1"}),
    }


def test_a_canary_version_prometheus_has_no_series_of_is_missing_naming_what_it_has() -> None:
    # The hook deployed another artifact: the service's series carry v-wrong, none v2.
    def answer(query: str) -> list[tuple[dict[str, str], str]]:
        if query.startswith("count(http_requests_total"):
            return [] if 'version="v2"' in query else [({}, "3")]
        if query.startswith("group by (version)"):
            return [({"version": "v1"}, "1"), ({"version": "v-wrong"}, "1")]
        return healthy(query)

    p = provider(answer)
    p.verify_timeout = 0.0
    (problem,) = p.missing(PLACEMENT)
    assert 'version="v2"' in problem
    assert "canary version v2" in problem
    assert "v-wrong" in problem


def test_versions_present_or_selected_by_track_are_not_missing() -> None:
    def answer(query: str) -> list[tuple[dict[str, str], str]]:
        if query.startswith("count(http_requests_total"):
            return [({}, "2")]
        return healthy(query)

    assert provider(answer).missing(PLACEMENT) == []
    by_track = PrometheusProviderSettings(
        canary_labels={"track": "canary"}, baseline_labels={"track": "stable"}
    )
    assert provider(lambda q: [], by_track).missing(PLACEMENT) == []  # nothing to look for
