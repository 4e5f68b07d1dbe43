"""A Prometheus HTTP API client that tells failures apart and never mistakes no data for zero.

Failures are classified, because each calls for something different:
unreachable (connection refused, DNS), timeout (ours or Prometheus' own query
timeout), HTTP error (a status with no API answer, e.g. a proxy's 502 or a
401), and PromQL error (`bad_data` / `execution`: the query is wrong, retrying
will not help). An empty result and NaN are not failures but answers, kept as
such: `QueryResult.value()` returns None for no series, and NaN as NaN.

Transient failures are retried with backoff and jitter, honouring
`Retry-After`; every query is counted in `prometheus_query_total{workflow,
result}` and timed in `prometheus_query_duration_seconds` when a
`DeploymentMetrics` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from safeship.config import PrometheusSettings
from safeship.errors import ConfigError, PermanentError, ProviderError
from safeship.http import RETRY_STATUSES, RetryPolicy, make_client, retry_after_seconds
from safeship.http import with_retries as _with_retries
from safeship.metrics import DeploymentMetrics
from safeship.prometheus.promql import parse_duration
from safeship.redact import (
    basic_credential_forms,
    redact_text,
    redact_url,
    shown,
    url_password_forms,
)

# How much of an answer that is not Prometheus' an error message quotes.
_SHOWN = 120


class PrometheusError(ProviderError):
    """Prometheus could not answer; `kind` is unreachable, timeout or http."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after)
        self.kind = kind
        self.status = status


class PrometheusRejected(PermanentError):
    """Prometheus (or a proxy before it) refused the request: 401, 403, 404...; not retried."""

    def __init__(self, message: str, status: int) -> None:
        hint = {
            401: "; check prometheus.bearer_token / basic_auth",
            403: "; the credentials lack permission",
            404: "; check prometheus.url (a path prefix?)",
        }.get(status, "")
        super().__init__(message + hint)
        self.status = status


class PromQLError(PermanentError):
    """Prometheus rejected the query itself (`bad_data`, `execution`): fix the query."""

    def __init__(self, error_type: str, message: str, query: str) -> None:
        super().__init__(f"PromQL {error_type}: {message} (query: {query})")
        self.error_type = error_type
        self.query = query


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class QueryResult:
    """An instant-query answer; `samples` is empty when nothing matched (no data, not zero)."""

    query: str
    result_type: str
    samples: tuple[Sample, ...]

    @property
    def empty(self) -> bool:
        return not self.samples

    def value(self) -> float | None:
        """The single sample's value; None when empty (NaN stays NaN for the caller to judge)."""
        if not self.samples:
            return None
        if len(self.samples) > 1:
            raise PromQLError(
                "ambiguous",
                f"expected one series, got {len(self.samples)}; aggregate it (e.g. sum(...))",
                self.query,
            )
        return self.samples[0].value


def _parse_value(text: str) -> float:
    # Prometheus encodes sample values as strings: "1.5", "NaN", "+Inf", "-Inf".
    return float(text)


class PrometheusClient:
    """Calls one Prometheus server's HTTP API on behalf of one `workflow` (for its metrics)."""

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        workflow: str = "analysis",
        metrics: DeploymentMetrics | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not settings.url:
            raise ConfigError(
                "no Prometheus URL: set prometheus.url in the config or PROMETHEUS_URL"
            )
        self.url = settings.url
        self.workflow = workflow
        self._metrics = metrics
        self._sleep = sleep
        self._policy = RetryPolicy(retries=settings.retries)
        self._timeout = settings.timeout
        headers = {"Accept": "application/json"}
        auth = None
        # What Prometheus (or a proxy before it) answers may quote the credentials it got:
        # a password also as the HTTP Basic header carries it.
        self._secrets = url_password_forms(settings.url)
        if settings.bearer_token is not None:
            token = settings.bearer_token.reveal(environ)
            self._secrets.append(token)
            headers["Authorization"] = f"Bearer {token}"
        if settings.basic_auth is not None:
            user = settings.basic_auth.username
            password = settings.basic_auth.password.reveal(environ)
            self._secrets += [password, *basic_credential_forms(user, password)]
            auth = (user, password)
        self._client = make_client(
            settings.url,
            timeout=settings.timeout,
            headers=headers,
            auth=auth,
            ca_file=settings.ca_file,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- health -------------------------------------------------------------------

    def healthy(self) -> bool:
        """`/-/healthy` answers 200; raises PrometheusError when it cannot be reached."""
        return self._get_plain("/-/healthy").status_code == 200

    def ready(self) -> bool:
        """`/-/ready` answers 200 (503 while starting up)."""
        return self._get_plain("/-/ready").status_code == 200

    def buildinfo(self) -> dict[str, Any]:
        data: dict[str, Any] = self._api("GET", "/api/v1/status/buildinfo", {})
        return data

    # --- queries ------------------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> QueryResult:
        """An instant query at `at` (default: now), instrumented and retried."""
        params: dict[str, str] = {"query": expr, "timeout": promql_duration(self._timeout)}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._instrumented(lambda: self._api("POST", "/api/v1/query", params))
        return _query_result(expr, data, self._secrets)

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query: per series, its labels and (timestamp, value) points."""
        params = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
            "timeout": promql_duration(self._timeout),
        }
        data = self._instrumented(lambda: self._api("POST", "/api/v1/query_range", params))
        try:
            return [
                (dict(s["metric"]), [(float(t), _parse_value(v)) for t, v in s["values"]])
                for s in data["result"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise PrometheusError("http", f"malformed range answer ({exc!r})") from None

    def series(
        self, match: str, start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]:
        """Label sets of the series a selector matches."""
        params: dict[str, str] = {"match[]": match}
        if start is not None:
            params["start"] = f"{start:.3f}"
        if end is not None:
            params["end"] = f"{end:.3f}"
        data = self._api("POST", "/api/v1/series", params)
        return [dict(item) for item in data]

    def metadata(self, metric: str | None = None) -> dict[str, list[dict[str, str]]]:
        """Metric type/help/unit by metric name, from the targets' exposition."""
        params = {"metric": metric} if metric else {}
        data: dict[str, list[dict[str, str]]] = self._api("GET", "/api/v1/metadata", params)
        return data

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (with their `scrapeInterval`)."""
        data = self._api("GET", "/api/v1/targets", {"state": "active"})
        return list(data.get("activeTargets", []))

    def longest_scrape_interval(self) -> float | None:
        """The longest scrape interval among active targets (the cautious one), if any is known."""
        intervals = [t.get("scrapeInterval") for t in self.targets()]
        known = [parse_duration(i) for i in intervals if isinstance(i, str)]
        seconds = [k for k in known if k is not None]
        return max(seconds) if seconds else None

    def format_query(self, expr: str) -> str:
        """Prometheus' own formatting of `expr`: a cheap syntax check (raises PromQLError)."""
        data = self._api("POST", "/api/v1/format_query", {"query": expr})
        return str(data)

    # --- plumbing -----------------------------------------------------------------

    def _instrumented(self, call: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = "success"
        try:
            return call()
        except PrometheusError as exc:
            result = "timeout" if exc.kind == "timeout" else "failed"
            raise
        except (PromQLError, PrometheusRejected):
            result = "failed"
            raise
        finally:
            if self._metrics is not None:
                self._metrics.record_prometheus_query(
                    self.workflow, result, time.monotonic() - started
                )

    def _get_plain(self, path: str) -> httpx.Response:
        return _with_retries(lambda: self._send("GET", path, None), self._policy, sleep=self._sleep)

    def _api(self, method: str, path: str, params: dict[str, str]) -> Any:
        def once() -> Any:
            response = self._send(method, path, params)
            return self._decode(response, path, params.get("query", ""))

        return _with_retries(once, self._policy, sleep=self._sleep)

    def _send(self, method: str, path: str, params: dict[str, str] | None) -> httpx.Response:
        where = f"{redact_url(self.url)}{path}"
        try:
            if method == "POST":
                response = self._client.post(path, data=params)
            else:
                response = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise PrometheusError(
                "timeout", f"Prometheus {where}: no answer within {self._timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise PrometheusError(
                "unreachable", f"Prometheus {where} unreachable: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code in RETRY_STATUSES and not _is_api_error(response):
            raise PrometheusError(
                "http",
                f"Prometheus {where}: HTTP {response.status_code}",
                status=response.status_code,
                retry_after=retry_after_seconds(response),
            )
        return response

    def _redact(self, text: str) -> str:
        """Text from the server, fit to show: without the credentials, URL passwords masked."""
        return redact_text(text, self._secrets)

    def _decode(self, response: httpx.Response, path: str, query: str) -> Any:
        # `path` is the API's, below the URL: the request's own path repeats the URL's prefix.
        where = f"{redact_url(self.url)}{path}"
        try:
            body = response.json()
        except ValueError:
            if 400 <= response.status_code < 500 and response.status_code != 429:
                raise PrometheusRejected(
                    f"Prometheus {where}: HTTP {response.status_code}", response.status_code
                ) from None
            raise PrometheusError(
                "http",
                f"Prometheus {where}: HTTP {response.status_code} with a body that is not "
                f"JSON: {shown(response.text, self._secrets, _SHOWN)!r}",
                status=response.status_code,
            ) from None
        if not isinstance(body, dict) or "status" not in body:
            answer = shown(str(body), self._secrets, _SHOWN)
            raise PrometheusError("http", f"Prometheus {where}: unexpected answer {answer!r}")
        if body["status"] == "success" and response.status_code == 200:
            return body.get("data")
        error_type = self._redact(str(body.get("errorType", "unknown")))
        message = self._redact(str(body.get("error", "")))
        if error_type in ("bad_data", "execution"):
            raise PromQLError(error_type, message, query)
        if error_type == "timeout":
            raise PrometheusError("timeout", f"Prometheus {where}: query timed out: {message}")
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise PrometheusRejected(
                f"Prometheus {where}: HTTP {response.status_code} {error_type}: {message}",
                response.status_code,
            )
        raise PrometheusError(
            "http",
            f"Prometheus {where}: HTTP {response.status_code} {error_type}: {message}",
            status=response.status_code,
            retry_after=retry_after_seconds(response),
        )


def promql_duration(seconds: float) -> str:
    """`seconds` as a duration Prometheus parses: it takes no fractions ("0.5s" is a
    bad_data error on every query), so whole seconds, else whole milliseconds."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _is_api_error(response: httpx.Response) -> bool:
    """A 503 from Prometheus' API carries its own errorType (e.g. timeout) worth reading."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _query_result(expr: str, data: Any, secrets: list[str]) -> QueryResult:
    """`data` as a query's result; `secrets` are what an answer that is not may quote back."""
    if not isinstance(data, dict) or "resultType" not in data:
        raise PrometheusError(
            "http", f"unexpected query answer: {shown(str(data), secrets, _SHOWN)!r}"
        )
    kind = data["resultType"]
    raw = data.get("result")
    if kind == "scalar" and isinstance(raw, list) and len(raw) == 2:
        try:
            sample = Sample({}, _parse_value(raw[1]), float(raw[0]))
        except (TypeError, ValueError) as exc:
            raise PrometheusError("http", f"malformed scalar answer: {raw!r}") from exc
        return QueryResult(expr, kind, (sample,))
    if kind != "vector":
        raise PromQLError("unsupported", f"an instant query must return a vector, got {kind}", expr)
    try:
        samples = tuple(
            Sample(dict(item["metric"]), _parse_value(item["value"][1]), float(item["value"][0]))
            for item in raw or []
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError(
            "http", f"malformed query answer ({exc!r}): {shown(str(raw), secrets, _SHOWN)}"
        ) from None
    return QueryResult(expr, kind, samples)
