"""The Prometheus API client: failures told apart, no data kept apart from zero, retries."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from safeship.config import BasicAuth, PrometheusSettings, SecretRef
from safeship.errors import ConfigError
from safeship.metrics import DeploymentMetrics
from safeship.prometheus.client import (
    PrometheusClient,
    PrometheusError,
    PrometheusRejected,
    PromQLError,
)
from safeship.testing import MemoryStore

URL = "http://prometheus.test:9090"
Handler = Callable[[httpx.Request], httpx.Response]


def vector(*samples: tuple[dict[str, str], str]) -> httpx.Response:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
    )


def client(
    handler: Handler,
    *,
    retries: int = 2,
    metrics: DeploymentMetrics | None = None,
    sleeps: list[float] | None = None,
    **settings: object,
) -> PrometheusClient:
    slept = sleeps if sleeps is not None else []
    return PrometheusClient(
        PrometheusSettings(url=URL, retries=retries, **settings),  # type: ignore[arg-type]
        metrics=metrics,
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        environ={"PROM_TOKEN": "s3cret-token", "PROM_PASSWORD": "pw"},
    )


def test_a_query_returns_its_samples() -> None:
    c = client(lambda r: vector(({"track": "canary"}, "42.5")))
    result = c.query("sum(x)", at=1700000000)
    assert result.value() == 42.5
    assert result.samples[0].labels == {"track": "canary"}


def test_empty_result_is_no_data_not_zero() -> None:
    result = client(lambda r: vector()).query("sum(missing)")
    assert result.empty
    assert result.value() is None


def test_nan_is_kept_as_nan() -> None:
    value = client(lambda r: vector(({}, "NaN"))).query("x").value()
    assert value is not None
    assert math.isnan(value)


def test_several_series_where_one_is_expected_is_an_error() -> None:
    result = client(lambda r: vector(({"a": "1"}, "1"), ({"a": "2"}, "2"))).query("x")
    with pytest.raises(PromQLError, match="expected one series, got 2"):
        result.value()


def test_bad_promql_is_a_promql_error_and_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"status": "error", "errorType": "bad_data", "error": "parse error: unclosed"}
        return httpx.Response(400, json=body)

    with pytest.raises(PromQLError, match="bad_data: parse error: unclosed") as info:
        client(handler).query("sum(x")
    assert info.value.query == "sum(x"
    assert len(calls) == 1


def test_unreachable_is_classified_and_retried_with_backoff() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(PrometheusError) as info:
        client(handler, retries=3, sleeps=sleeps).query("up")
    assert info.value.kind == "unreachable"
    assert URL in str(info.value)
    assert len(sleeps) == 3
    assert all(0 <= s <= 10 for s in sleeps)


def test_timeout_is_classified_as_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(PrometheusError) as info:
        client(handler, retries=0).query("up")
    assert info.value.kind == "timeout"


def test_prometheus_query_timeout_answer_is_a_timeout() -> None:
    body = {"status": "error", "errorType": "timeout", "error": "query timed out in expression"}
    with pytest.raises(PrometheusError) as info:
        client(lambda r: httpx.Response(503, json=body), retries=0).query("up")
    assert info.value.kind == "timeout"


def test_503_honours_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "7"}, text="starting"), vector()])
    sleeps: list[float] = []
    result = client(lambda r: next(answers), sleeps=sleeps).query("up")
    assert result.empty
    assert sleeps == [7.0]


def test_garbage_answer_is_an_http_error() -> None:
    with pytest.raises(PrometheusError, match="not JSON") as info:
        client(lambda r: httpx.Response(200, text="<html>proxy</html>"), retries=0).query("up")
    assert info.value.kind == "http"


def test_unauthorized_is_refused_once_with_a_hint_and_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, text="no")

    hint = r"HTTP 401; check prometheus\.bearer_token"
    with pytest.raises(PrometheusRejected, match=hint) as info:
        client(handler, retries=3).query("up")
    assert info.value.status == 401
    assert len(calls) == 1


def test_malformed_vector_answer_is_an_http_error_not_a_crash() -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
    with pytest.raises(PrometheusError, match="malformed query answer") as info:
        client(lambda r: httpx.Response(200, json=body), retries=0).query("up")
    assert info.value.kind == "http"


def test_bearer_token_is_sent_and_never_shown() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        raise httpx.ConnectError("down", request=request)

    c = client(handler, retries=0, bearer_token=SecretRef(env="PROM_TOKEN"))
    with pytest.raises(PrometheusError) as info:
        c.query("up")
    assert seen == ["Bearer s3cret-token"]
    assert "s3cret" not in str(info.value)


def test_basic_auth_password_comes_from_a_secret() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return vector()

    auth = BasicAuth(username="ci", password=SecretRef(env="PROM_PASSWORD"))
    client(handler, basic_auth=auth).query("up")
    assert seen == [httpx.BasicAuth("ci", "pw")._auth_header]


def test_missing_secret_names_the_variable_not_a_value() -> None:
    settings = PrometheusSettings(url=URL, bearer_token=SecretRef(env="NOT_SET_ANYWHERE"))
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        PrometheusClient(settings, environ={})


def test_no_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_URL"):
        PrometheusClient(PrometheusSettings())


def test_queries_are_counted_by_workflow_and_result() -> None:
    registry = CollectorRegistry()
    metrics = DeploymentMetrics(registry, MemoryStore(), service="checkout")
    answers = iter(
        [
            vector(({}, "1")),
            httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "x"}),
        ]
    )
    c = client(lambda r: next(answers), metrics=metrics)
    c.query("up")
    with pytest.raises(PromQLError):
        c.query("bad(")
    labels = {"service": "checkout", "workflow": "analysis"}
    assert registry.get_sample_value("prometheus_query_total", {**labels, "result": "success"}) == 1
    assert registry.get_sample_value("prometheus_query_total", {**labels, "result": "failed"}) == 1
    assert registry.get_sample_value("prometheus_query_duration_seconds_count", labels) == 2


def test_query_is_sent_with_time_and_timeout() -> None:
    sent: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        from urllib.parse import parse_qs

        sent.append(parse_qs(request.content.decode()))
        return vector()

    client(handler, timeout=4).query('sum(x{a="b"})', at=1700000123.5)
    assert sent[0]["query"] == ['sum(x{a="b"})']
    assert sent[0]["time"] == ["1700000123.500"]
    assert sent[0]["timeout"] == ["4s"]


def test_format_query_returns_prometheus_formatting() -> None:
    body = {"status": "success", "data": "sum by (a) (x)"}
    assert client(lambda r: httpx.Response(200, json=body)).format_query("sum(x)by(a)") == (
        "sum by (a) (x)"
    )


def test_metadata_returns_types_by_metric() -> None:
    body = {"status": "success", "data": {"x_total": [{"type": "counter", "help": "", "unit": ""}]}}
    meta = client(lambda r: httpx.Response(200, text=json.dumps(body))).metadata("x_total")
    assert meta["x_total"][0]["type"] == "counter"
