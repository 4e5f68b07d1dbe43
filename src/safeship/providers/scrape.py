"""A provider that reads each version's own `/metrics`, so no Prometheus server is needed.

Counters only ever grow, so the figures for a window are the difference
between a snapshot taken when the window opened and one taken when it is
measured. Per target it reads

    requests  sum(http_requests_total)
    errors    sum(http_requests_total{status=~ERROR_STATUS_REGEX})
    latency   sum by (le) (http_request_duration_seconds_bucket)

optionally only over series whose labels match `match` (e.g. one service of
several in one process). A counter that went down means the process
restarted: the difference would be meaningless, so the window is restarted
from a fresh snapshot and the caller is told to retry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from safeship.errors import ConfigError, ProviderError
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window

REQUESTS_METRIC = "http_requests_total"
BUCKETS_METRIC = "http_request_duration_seconds_bucket"
_ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"

_Series = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Scrape:
    """Counter values per series (labels sorted) of one target at one moment."""

    requests: Mapping[_Series, float]
    buckets: Mapping[_Series, float]


@dataclass(frozen=True)
class _Target:
    role: str
    url: str
    safe_url: str


class _CounterReset(Exception):
    def __init__(self, target: _Target) -> None:
        super().__init__(target.safe_url)
        self.target = target


class ScrapeProvider(MetricsProvider):
    """Measures canary and baseline by diffing scrapes of their `/metrics` endpoints.

    A URL without a path gets `/metrics` appended; any other path is used as
    given. `transport` replaces the network in tests.
    """

    def __init__(
        self,
        canary_url: str,
        baseline_url: str,
        timeout: float = 5.0,
        error_status_regex: str = r"5..",
        transport: httpx.BaseTransport | None = None,
        match: Mapping[str, str] | None = None,
    ) -> None:
        self._canary = _target("canary", canary_url)
        self._baseline = _target("baseline", baseline_url)
        try:
            self._error_status = re.compile(error_status_regex)
        except re.error as exc:
            raise ConfigError(
                f"error status regex {error_status_regex!r} is invalid: {exc}"
            ) from exc
        self._error_status_text = error_status_regex
        self._match = dict(match or {})
        self._snapshots: dict[float, tuple[_Scrape, _Scrape]] = {}
        self._client = httpx.Client(
            transport=transport, timeout=timeout, headers={"Accept": _ACCEPT}
        )

    def ready(self) -> None:
        """Both targets answer with parsable metrics."""
        self._scrape_both()

    def window_opened(self, at: float) -> None:
        """Snapshot both targets for the window starting at `at`; raises `ProviderError`."""
        self._snapshots[at] = self._scrape_both()

    def measure(self, window: Window) -> Measurement:
        """Deltas since the window's opening snapshot; raises `ProviderError` when there are none.

        The opening snapshot is the one taken at `window.start` or else the
        latest before it. Without one, or after a counter reset, the current
        scrape becomes the window's snapshot so that a retry has a start to
        measure from.
        """
        current = self._scrape_both()
        opened_at = max((at for at in self._snapshots if at <= window.start), default=None)
        if opened_at is None:
            self._restart_window(window.start, current)
            raise ProviderError(
                f"the window starting at {window.start} had no opening snapshot; "
                "took one now, retry to measure from it"
            )
        self._drop_before(opened_at)
        opening = self._snapshots[opened_at]
        try:
            canary = self._delta(self._canary, opening[0], current[0])
            baseline = self._delta(self._baseline, opening[1], current[1])
        except _CounterReset as reset:
            self._restart_window(window.start, current)
            raise ProviderError(
                f"counter reset on {reset.target.safe_url}: the process restarted; "
                "the window is restarted"
            ) from None
        return Measurement(
            window=window,
            canary=canary,
            baseline=baseline,
            queries={
                target.role: self._describe(target, opened_at)
                for target in (self._canary, self._baseline)
            },
        )

    def close(self) -> None:
        self._client.close()

    def _restart_window(self, start: float, current: tuple[_Scrape, _Scrape]) -> None:
        self._snapshots[start] = current
        self._drop_before(start)

    def _drop_before(self, at: float) -> None:
        for old in [t for t in self._snapshots if t < at]:
            del self._snapshots[old]

    def _describe(self, target: _Target, opened_at: float) -> str:
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(self._match.items()))
        errors = ",".join(filter(None, [selector, f'status=~"{self._error_status_text}"']))
        return (
            f"scrape {target.safe_url} sum({REQUESTS_METRIC}{{{selector}}}) "
            f"errors sum({REQUESTS_METRIC}{{{errors}}}) "
            f"sum by (le) ({BUCKETS_METRIC}{{{selector}}}) "
            f"delta since snapshot at {opened_at}"
        )

    def _scrape_both(self) -> tuple[_Scrape, _Scrape]:
        return self._scrape(self._canary), self._scrape(self._baseline)

    def _scrape(self, target: _Target) -> _Scrape:
        where = f"{target.role} {target.safe_url}"
        try:
            response = self._client.get(target.url)
        except httpx.HTTPError as exc:
            detail = str(exc).replace(target.url, target.safe_url) or type(exc).__name__
            raise ProviderError(f"cannot scrape {where}: {detail}") from None
        if response.status_code != 200:
            raise ProviderError(f"cannot scrape {where}: HTTP {response.status_code}")
        try:
            return self._parse(response.text)
        # The parser's failures are not a documented set; any of them means unusable text.
        except Exception as exc:
            raise ProviderError(
                f"cannot parse the metrics from {where}: {type(exc).__name__}: {exc}"
            ) from exc

    def _parse(self, text: str) -> _Scrape:
        requests: dict[_Series, float] = {}
        buckets: dict[_Series, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == REQUESTS_METRIC:
                    into = requests
                elif sample.name == BUCKETS_METRIC:
                    into = buckets
                else:
                    continue
                labels: dict[str, str] = sample.labels
                if into is buckets and not _is_number(labels.get("le")):
                    raise ValueError(f"a {BUCKETS_METRIC} series has no numeric le label")
                if all(labels.get(k) == v for k, v in self._match.items()):
                    into[tuple(sorted(labels.items()))] = float(sample.value)
        return _Scrape(requests, buckets)

    def _delta(self, target: _Target, opening: _Scrape, current: _Scrape) -> VersionSample:
        for before, now in (
            (opening.requests, current.requests),
            (opening.buckets, current.buckets),
        ):
            # A series that vanished counts as 0: a restarted process has not served it yet.
            if any(now.get(series, 0.0) < value for series, value in before.items()):
                raise _CounterReset(target)

        def is_error(series: _Series) -> bool:
            return self._error_status.fullmatch(dict(series).get("status", "")) is not None

        requests = sum(current.requests.values()) - sum(opening.requests.values())
        errors = sum(v for s, v in current.requests.items() if is_error(s)) - sum(
            v for s, v in opening.requests.items() if is_error(s)
        )
        return VersionSample(
            requests=requests,
            errors=errors,
            latency_buckets=_bucket_deltas(opening.buckets, current.buckets),
        )


def _bucket_deltas(
    opening: Mapping[_Series, float], current: Mapping[_Series, float]
) -> tuple[tuple[float, float], ...]:
    """Cumulative `(le, count)` over the window, summed across series, sorted with +Inf last."""
    by_le: dict[float, float] = {}
    for sign, series_values in ((1.0, current), (-1.0, opening)):
        for series, value in series_values.items():
            le = float(dict(series)["le"])
            by_le[le] = by_le.get(le, 0.0) + sign * value
    return tuple(sorted(by_le.items(), key=lambda item: (math.isinf(item[0]), item[0])))


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def _target(role: str, url: str) -> _Target:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{role} metrics URL is invalid: {exc}") from exc
    safe_url = str(parsed.copy_with(userinfo=b""))
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"{role} metrics URL must be http(s)://HOST[:PORT][/PATH], not {safe_url}"
        )
    if parsed.path in ("", "/"):
        parsed = parsed.copy_with(path="/metrics")
    return _Target(role=role, url=str(parsed), safe_url=str(parsed.copy_with(userinfo=b"")))
