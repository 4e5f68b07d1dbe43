"""A provider that reads each version's own `/metrics`, so no Prometheus server is needed.

Per target it reads

    requests  sum(http_requests_total)
    errors    sum(http_requests_total{status=~ERROR_STATUS_REGEX})
    latency   sum by (le) (http_request_duration_seconds_bucket)

optionally only over series whose labels match `match` (e.g. one service of
several in one process). The figures for a window are the increase since the
window opened, counted the way Prometheus' `increase()` counts: scrape after
scrape, a series that went down restarted from zero, so what it shows now is
all it served since. A restart of the process (a new
`process_start_time_seconds`, or every series that counted anything down or
gone at once) restarts every series. A restart therefore never restarts the
window nor hides the errors after it; it is counted in `resets`, and what the
process served between the last scrape and its crash is lost (never read as
successes). Scraping every `poll_interval` (the rollout asks that often)
keeps that loss to a second's worth.

Request series that exist but carry no error label make the errors unknown
(NaN, with the reason), exactly as the Prometheus provider does: a label
named differently must never read as "no errors".

The URLs may be templates over the rollout's slots (`{{ canary_address }}`,
`{{ stable_address }}`, see `safeship.placement`), the default: each rollout
then reads the slot its canary went into, whichever that is this time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from safeship.errors import ConfigError, ProviderError
from safeship.http import make_client
from safeship.placement import Placement, variables_in
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.redact import redact_text

REQUESTS_METRIC = "http_requests_total"
BUCKETS_METRIC = "http_request_duration_seconds_bucket"
START_TIME_METRIC = "process_start_time_seconds"
VERSION_LABEL = "version"
_ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"

_Series = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Scrape:
    """Counter values per series of one target at one moment, and its process start time."""

    values: Mapping[_Series, float]
    started: float | None
    versions: frozenset[str] = frozenset()  # `version` labels of its request series


@dataclass
class _Counters:
    """One target's counters, reset-corrected: the running increase per series since tracked."""

    raw: dict[_Series, float] = field(default_factory=dict)
    total: dict[_Series, float] = field(default_factory=dict)
    resets: int = 0
    started: float | None = None
    tracking: bool = False

    def add(self, scrape: _Scrape) -> None:
        """Count one scrape: per series its increase, a counter that went down from zero.

        The process restarted when it reports a new start time, or when every
        series that had counted anything went down or vanished; one series
        removed (or reset by its code) while the others go on is not a restart.
        """
        if not self.tracking:
            self.raw, self.started, self.tracking = dict(scrape.values), scrape.started, True
            return
        new_start = (
            scrape.started is not None
            and self.started is not None
            and scrape.started != self.started
        )
        counted = [series for series, value in self.raw.items() if value > 0]
        fell = [s for s in counted if scrape.values.get(s, 0.0) < self.raw[s]]
        restarted = new_start or (bool(counted) and len(fell) == len(counted))
        if restarted:
            self.resets += 1
        for series, value in scrape.values.items():
            before = self.raw.get(series, 0.0)
            if restarted or value < before:
                before = 0.0  # this counter started again from zero
            self.total[series] = self.total.get(series, 0.0) + value - before
        self.raw = dict(scrape.values)
        self.started = scrape.started if scrape.started is not None else self.started


@dataclass(frozen=True)
class _Opening:
    """Both targets' corrected totals when a window opened."""

    canary: dict[_Series, float]
    baseline: dict[_Series, float]
    canary_resets: int
    baseline_resets: int


@dataclass(frozen=True)
class _Target:
    role: str
    url: str
    safe_url: str


class ScrapeProvider(MetricsProvider):
    """Measures canary and baseline from the reset-corrected counters of their `/metrics`.

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
        error_label: str = "status",
        poll_interval: float = 1.0,
    ) -> None:
        self._templates = {"canary": canary_url, "baseline": baseline_url}
        # A template is rendered by `follow`; a fixed URL is checked now.
        self._targets = {
            role: None if variables_in(url) else _target(role, url)
            for role, url in self._templates.items()
        }
        self._versions: dict[str, frozenset[str]] = {}
        try:
            self._error_status = re.compile(error_status_regex)
        except re.error as exc:
            raise ConfigError(
                f"error status regex {error_status_regex!r} is invalid: {exc}"
            ) from exc
        self._error_status_text = error_status_regex
        self._error_label = error_label
        self._match = dict(match or {})
        self._counters = {"canary": _Counters(), "baseline": _Counters()}
        self._openings: dict[float, _Opening] = {}
        self.fresh_every = poll_interval
        self._client = make_client(
            timeout=timeout, headers={"Accept": _ACCEPT}, transport=transport
        )

    def follow(self, placement: Placement) -> None:
        """Render the URL templates over the rollout's slots and count from there on."""
        self._targets = {
            role: _target(role, placement.render(url, f"provider.{role}_url"))
            for role, url in self._templates.items()
        }
        self._counters = {"canary": _Counters(), "baseline": _Counters()}
        self._openings.clear()

    def ready(self) -> None:
        """Both targets answer with parsable metrics."""
        self._scrape_both()

    def versions(self) -> dict[str, frozenset[str]]:
        self._scrape_both()
        return {role: seen for role, seen in self._versions.items() if seen}

    def source(self, role: str) -> str:
        return self._target_of(role).safe_url

    def _target_of(self, role: str) -> _Target:
        target = self._targets[role]
        if target is None:
            raise ConfigError(
                f"provider.{role}_url {redact_text(self._templates[role])!r} is a template over "
                "a rollout's "
                "slots: it has no address until a rollout starts"
            )
        return target

    def window_opened(self, at: float) -> None:
        """Note both targets' totals for the window starting at `at`; raises `ProviderError`."""
        self._scrape_both()
        self._openings[at] = self._opening()

    def measure(self, window: Window) -> Measurement:
        """The increase since the window opened; raises `ProviderError` when it cannot be had.

        The opening is the one noted at `window.start` or else the latest before
        it. Without one, the current totals become the window's opening so that a
        retry has a start to measure from.
        """
        self._scrape_both()
        opened_at = max((at for at in self._openings if at <= window.start), default=None)
        if opened_at is None:
            self._openings[window.start] = self._opening()
            self._drop_before(window.start)
            raise ProviderError(
                f"the window starting at {window.start} had no opening snapshot; "
                "took one now, retry to measure from it"
            )
        self._drop_before(opened_at)
        opening = self._openings[opened_at]
        problems: list[str] = []
        canary = self._delta(
            self._target_of("canary"), opening.canary, opening.canary_resets, problems
        )
        baseline = self._delta(
            self._target_of("baseline"), opening.baseline, opening.baseline_resets, problems
        )
        return Measurement(
            window=window,
            canary=canary,
            baseline=baseline,
            queries={
                target.role: self._describe(target, opened_at)
                for target in (self._target_of("canary"), self._target_of("baseline"))
            },
            problems=tuple(problems),
        )

    def close(self) -> None:
        self._client.close()

    def _opening(self) -> _Opening:
        canary, baseline = self._counters["canary"], self._counters["baseline"]
        return _Opening(dict(canary.total), dict(baseline.total), canary.resets, baseline.resets)

    def _drop_before(self, at: float) -> None:
        for old in [t for t in self._openings if t < at]:
            del self._openings[old]

    def _describe(self, target: _Target, opened_at: float) -> str:
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(self._match.items()))
        errors = ",".join(
            filter(None, [selector, f'{self._error_label}=~"{self._error_status_text}"'])
        )
        return (
            f"scrape {target.safe_url} sum({REQUESTS_METRIC}{{{selector}}}) "
            f"errors sum({REQUESTS_METRIC}{{{errors}}}) "
            f"sum by (le) ({BUCKETS_METRIC}{{{selector}}}) "
            f"increase since snapshot at {opened_at}"
        )

    def _scrape_both(self) -> None:
        # Both are read before either is counted, so a failure leaves both as they were.
        canary = self._scrape(self._target_of("canary"))
        baseline = self._scrape(self._target_of("baseline"))
        self._counters["canary"].add(canary)
        self._counters["baseline"].add(baseline)
        self._versions = {"canary": canary.versions, "baseline": baseline.versions}

    def request_series(self, role: str) -> list[dict[str, str]]:
        """The labels of every request series `role`'s target exposes, `match` not applied.

        What `safeship check` tells a `match` that selects nothing by; raises
        `ProviderError` as a scrape does.
        """
        return self._read(self._target_of(role), _request_series)

    def _scrape(self, target: _Target) -> _Scrape:
        return self._read(target, self._parse)

    def _read(self, target: _Target, parse: Callable[[str], _T]) -> _T:
        where = f"{target.role} {target.safe_url}"
        try:
            response = self._client.get(target.url)
        except httpx.HTTPError as exc:
            detail = str(exc).replace(target.url, target.safe_url) or type(exc).__name__
            raise ProviderError(f"cannot scrape {where}: {detail}") from None
        if response.status_code != 200:
            raise ProviderError(f"cannot scrape {where}: HTTP {response.status_code}")
        try:
            return parse(response.text)
        # The parser's failures are not a documented set; any of them means unusable text.
        except Exception as exc:
            raise ProviderError(
                f"cannot parse the metrics from {where}: {type(exc).__name__}: {exc}"
            ) from exc

    def _parse(self, text: str) -> _Scrape:
        values: dict[_Series, float] = {}
        started: float | None = None
        versions: set[str] = set()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels: dict[str, str] = sample.labels
                if sample.name == START_TIME_METRIC:
                    started = float(sample.value)
                    continue
                if sample.name not in (REQUESTS_METRIC, BUCKETS_METRIC):
                    continue
                if sample.name == BUCKETS_METRIC and not _is_number(labels.get("le")):
                    raise ValueError(f"a {BUCKETS_METRIC} series has no numeric le label")
                if all(labels.get(k) == v for k, v in self._match.items()):
                    values[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
                    if sample.name == REQUESTS_METRIC and VERSION_LABEL in labels:
                        versions.add(labels[VERSION_LABEL])
        return _Scrape(values, started, frozenset(versions))

    def _delta(
        self,
        target: _Target,
        opening: Mapping[_Series, float],
        resets_then: int,
        problems: list[str],
    ) -> VersionSample:
        counters = self._counters[target.role]
        increase = {
            series: value - opening.get(series, 0.0) for series, value in counters.total.items()
        }
        requests = sum(v for (name, _), v in increase.items() if name == REQUESTS_METRIC)
        labelled = [
            labels
            for (name, labels) in counters.raw
            if name == REQUESTS_METRIC and self._error_label in dict(labels)
        ]
        if requests > 0 and not labelled:
            problems.append(
                f"{target.role} {target.safe_url}: no {REQUESTS_METRIC} series carries a "
                f"`{self._error_label}` label, so its errors are unknown (set "
                "provider.error_label to the label holding the HTTP status)"
            )
            errors = math.nan
        else:
            errors = sum(
                v
                for (name, labels), v in increase.items()
                if name == REQUESTS_METRIC and self._is_error(labels)
            )
        return VersionSample(
            requests=requests,
            errors=errors,
            latency_buckets=_buckets(increase),
            resets=counters.resets - resets_then,
        )

    def _is_error(self, labels: tuple[tuple[str, str], ...]) -> bool:
        status = dict(labels).get(self._error_label, "")
        return self._error_status.fullmatch(status) is not None


def _request_series(text: str) -> list[dict[str, str]]:
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS_METRIC
    ]


def _buckets(increase: Mapping[_Series, float]) -> tuple[tuple[float, float], ...]:
    """Cumulative `(le, count)` over the window, summed across series, sorted with +Inf last."""
    by_le: dict[float, float] = {}
    for (name, labels), value in increase.items():
        if name == BUCKETS_METRIC:
            le = float(dict(labels)["le"])
            by_le[le] = by_le.get(le, 0.0) + value
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
