"""Canary and baseline figures from a Prometheus server, over exactly the analysis window.

Each figure is an instant query at the window's end over `[window]`, where
the window starts after the current step's warm-up, so no query mixes
traffic from before a weight change. The queries are PromQL templates
(`{{ selector }}`, `{{ window }}`, ...) rendered with label values escaped, so
a service or environment name can never change a query's meaning.

No data stays no data: an empty requests result is zero requests (below any
minimum, hence inconclusive); an empty errors result counts as zero errors
only when the request series exist and carry the error label (otherwise the
error ratio is NaN: inconclusive, with the reason); NaN is passed on as NaN.

`increase()` already counts across counter resets; `resets()` says how many
there were (per scraped target, the series that reset most), so a crash loop
is seen for what it is. New figures appear once per scrape interval, which is
how often the rollout looks for obvious failure.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Literal

from safeship.config import PrometheusProviderSettings, render_template
from safeship.errors import ConfigError, ProviderError
from safeship.placement import VARIABLES, Placement, variables_in
from safeship.prometheus.client import (
    PrometheusClient,
    PrometheusRejected,
    PromQLError,
    QueryResult,
)
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.redact import redact_url

Track = Literal["canary", "baseline"]
VERSION_LABEL = "version"

REQUESTS = "sum(increase({{ requests_metric }}{ {{ selector }} }[{{ window }}]))"
ERRORS = (
    "sum(increase({{ requests_metric }}{ {{ selector }}, "
    '{{ error_label }}=~"{{ error_status }}" }[{{ window }}]))'
)
LATENCY = "sum by (le) (increase({{ latency_metric }}_bucket{ {{ selector }} }[{{ window }}]))"
# Restarts: a restarted process resets every series at once, so per target the series
# that reset most counts its restarts; targets (replicas) add up.
RESETS = "sum(max by (instance) (resets({{ requests_metric }}{ {{ selector }} }[{{ window }}])))"
# Whether the request series carry the error label at all: an empty errors
# result means "no errors" only if they do.
ERROR_LABEL_PRESENT = 'count({{ requests_metric }}{ {{ selector }}, {{ error_label }}!="" })'


def escape_label_value(value: str) -> str:
    """A PromQL double-quoted string's content: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_window(seconds: float) -> str:
    """A PromQL range covering `seconds`, in whole seconds (at least 1s)."""
    return f"{max(1, math.ceil(seconds))}s"


class PrometheusQueries:
    """Renders the provider's query templates for one service and environment."""

    def __init__(
        self, settings: PrometheusProviderSettings, *, service: str, environment: str
    ) -> None:
        self.settings = settings
        self.names = {"service": service, "environment": environment}
        # Free-form templates put these inside quotes themselves: give them escaped.
        self._escaped = {k: escape_label_value(v) for k, v in self.names.items()}
        self.placement: Placement | None = None
        # Outside a rollout (`safeship check prometheus`) a matcher over the slots only
        # asks that its label exist: the versions are not known until a rollout starts.
        self.any_slot = False

    def selector(self, track: Track) -> str:
        extra = self.settings.canary_labels if track == "canary" else self.settings.baseline_labels
        labels = {**self.settings.labels, **extra}
        return ", ".join(self._matcher(name, value, track) for name, value in labels.items())

    def _matcher(self, name: str, template: str, track: Track) -> str:
        """`name="value"`, the value rendered over service, environment and the slots.

        Before any promotion is recorded the stable version is unknown; the
        baseline is then every version but the canary's (`version!="v2"`).
        """
        needs = variables_in(template) - set(self.names)
        if not needs:
            return f'{name}="{escape_label_value(render_template(template, self.names))}"'
        where = f"provider.{'canary' if track == 'canary' else 'baseline'}_labels.{name}"
        if self.placement is None and self.any_slot:
            return f'{name}!=""'
        if self.placement is None:
            raise ConfigError(f"{where} {template!r} needs a rollout's slots, and there is none")
        if template.strip() == "{{ stable_version }}" and self.placement.stable.version is None:
            canary = self.placement.render("{{ canary_version }}", where)
            return f'{name}!="{escape_label_value(canary)}"'
        known = {k: v for k, v in self.placement.values().items() if v is not None}
        missing = sorted(needs - set(known))
        if missing:
            raise ConfigError(
                f"{where} {template!r} needs {', '.join(missing)}, which this rollout does not "
                f"have ({self.placement.describe()}): set {where} explicitly"
            )
        value = render_template(template, {**self.names, **known})
        return f'{name}="{escape_label_value(value)}"'

    def render(self, template: str, track: Track, window_seconds: float) -> str:
        s = self.settings
        return render_template(
            template,
            {
                **self._escaped,
                "selector": self.selector(track),
                "window": format_window(window_seconds),
                "requests_metric": s.requests_metric,
                "latency_metric": s.latency_metric,
                "error_label": s.error_label,
                "error_status": escape_label_value(s.error_status),
            },
        )

    def all(self, track: Track, window_seconds: float) -> dict[str, str]:
        """The requests, errors and latency queries of one version."""
        q = self.settings.queries
        return {
            "requests": self.render(q.requests or REQUESTS, track, window_seconds),
            "errors": self.render(q.errors or ERRORS, track, window_seconds),
            "latency": self.render(q.latency or LATENCY, track, window_seconds),
            "resets": self.render(q.resets or RESETS, track, window_seconds),
        }


class PrometheusProvider(MetricsProvider):
    """Measures canary and baseline with PromQL over the same window."""

    def __init__(
        self,
        settings: PrometheusProviderSettings,
        client: PrometheusClient,
        *,
        service: str,
        environment: str,
        scrape_interval: float | None = None,
        verify_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.queries = PrometheusQueries(settings, service=service, environment=environment)
        self.fresh_every = scrape_interval
        self.verify_timeout = (
            verify_timeout
            if verify_timeout is not None
            else min(90.0, max(10.0, 3 * (scrape_interval or 15.0)))
        )

    def follow(self, placement: Placement) -> None:
        self.queries.placement = placement

    def versions(self) -> dict[str, frozenset[str]]:
        """The `version` labels of each role's request series now (stale ones excluded)."""
        roles: tuple[Track, ...] = ("canary", "baseline")
        found = {role: self._versions_of(self.queries.selector(role)) for role in roles}
        return {role: seen for role, seen in found.items() if seen}

    def missing(self, placement: Placement) -> list[str]:
        """Versions selected by a slot template that Prometheus has no request series of.

        A canary just deployed appears after its first scrape, so this waits up
        to `verify_timeout` (three scrape intervals, at least 10 s) before it
        says a version is missing.
        """
        roles: tuple[tuple[Track, str | None], ...] = (
            ("canary", placement.canary.version),
            ("baseline", placement.stable.version),
        )
        wanted: dict[Track, str] = {
            role: version
            for role, version in roles
            if version is not None and self._selects_by_slot(role)
        }
        deadline = time.monotonic() + self.verify_timeout
        while True:
            absent = {r: v for r, v in wanted.items() if not self._has_series(r)}
            if not absent or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, self.fresh_every or 1.0))
        if not absent:
            return []
        seen = sorted(self._service_versions())
        return [
            f"Prometheus {redact_url(self.client.url)} has no {self.settings.requests_metric}"
            f"{{{self.queries.selector(role)}}} series ({role} version {version}) after "
            f"{self.verify_timeout:.0f}s; the service's series carry version(s) "
            f"{', '.join(seen) or 'none'}: is {version} deployed where Prometheus scrapes it?"
            for role, version in absent.items()
        ]

    def _selects_by_slot(self, role: Track) -> bool:
        labels = self.settings.canary_labels if role == "canary" else self.settings.baseline_labels
        return any(variables_in(value) & VARIABLES for value in labels.values())

    def _has_series(self, role: Track) -> bool:
        metric, selector = self.settings.requests_metric, self.queries.selector(role)
        return bool(self._query(f"count({metric}{{{selector}}})").value())

    def _service_versions(self) -> frozenset[str]:
        """Every version of the service's request series, whichever slot serves it."""
        return self._versions_of(
            ", ".join(
                f'{name}="{escape_label_value(render_template(value, self.queries.names))}"'
                for name, value in self.settings.labels.items()
                if not variables_in(value) & VARIABLES
            )
        )

    def _versions_of(self, selector: str) -> frozenset[str]:
        # An instant selector: a stopped process's series are stale, and not counted.
        metric = self.settings.requests_metric
        result = self._query(f"group by ({VERSION_LABEL}) ({metric}{{{selector}}})")
        return frozenset(
            s.labels[VERSION_LABEL] for s in result.samples if VERSION_LABEL in s.labels
        )

    def _query(self, expr: str) -> QueryResult:
        try:
            return self.client.query(expr)
        except (PromQLError, PrometheusRejected) as exc:
            raise ProviderError(str(exc)) from exc

    def source(self, role: str) -> str:
        track: Track = "canary" if role == "canary" else "baseline"
        return f"Prometheus {redact_url(self.client.url)} {{{self.queries.selector(track)}}}"

    def ready(self) -> None:
        """Prometheus answers and is ready (not still replaying its WAL).

        Without a configured scrape interval, the targets' own tell how often
        figures change (and so how often the rollout looks for obvious failure).
        """
        try:
            ready = self.client.ready()
        except PrometheusRejected as exc:
            raise ProviderError(str(exc)) from exc
        if not ready:
            raise ProviderError(f"Prometheus {redact_url(self.client.url)} is not ready yet")
        if self.fresh_every is None:
            with contextlib.suppress(PromQLError, PrometheusRejected, ProviderError):
                self.fresh_every = self.client.longest_scrape_interval()

    def measure(self, window: Window) -> Measurement:
        problems: list[str] = []
        try:
            canary, canary_q = self._sample("canary", window, problems)
            baseline, baseline_q = self._sample("baseline", window, problems)
        except (PromQLError, PrometheusRejected) as exc:
            raise ProviderError(str(exc)) from exc
        queries = {f"canary.{k}": v for k, v in canary_q.items()}
        queries |= {f"baseline.{k}": v for k, v in baseline_q.items()}
        return Measurement(
            window=window,
            canary=canary,
            baseline=baseline,
            queries=queries,
            problems=tuple(problems),
        )

    def _sample(
        self, track: Track, window: Window, problems: list[str]
    ) -> tuple[VersionSample, dict[str, str]]:
        queries = self.queries.all(track, window.seconds)
        at = window.end
        requests = self.client.query(queries["requests"], at).value()
        errors = self.client.query(queries["errors"], at).value()
        if errors is None:
            errors = self._errors_when_none_found(track, requests, window, queries)
            if math.isnan(errors):
                problems.append(
                    f"{track}: `{queries['errors']}` returned no data although "
                    + (
                        "a custom errors query must return 0 itself"
                        if self.settings.queries.errors is not None
                        else f"requests were served, and the request series carry no "
                        f"`{self.settings.error_label}` label (set provider.error_label)"
                    )
                )
        resets = self.client.query(queries["resets"], at).value()
        latency = self.client.query(queries["latency"], at)
        buckets = sorted(
            (float(s.labels["le"]), s.value) for s in latency.samples if "le" in s.labels
        )
        if any(math.isnan(count) for _, count in buckets):
            buckets = []
        return (
            VersionSample(
                requests=0.0 if requests is None else requests,
                errors=errors,
                latency_buckets=tuple(buckets),
                resets=_restarts(resets),
            ),
            queries,
        )

    def _errors_when_none_found(
        self, track: Track, requests: float | None, window: Window, queries: dict[str, str]
    ) -> float:
        """Zero errors if the request series exist and carry the error label; else unknown.

        Without requests there are no errors either (and too few requests to judge).
        """
        if not requests:
            return 0.0
        if self.settings.queries.errors is not None:
            return math.nan  # a custom errors query must return 0 itself
        probe = self.queries.render(ERROR_LABEL_PRESENT, track, window.seconds)
        queries["errors_label_probe"] = probe
        present = self.client.query(probe, window.end).value()
        return 0.0 if present else math.nan

    def close(self) -> None:
        self.client.close()


def _restarts(value: float | None) -> int:
    """`resets()` as a count; no data (or NaN) is none seen."""
    if value is None or not math.isfinite(value):
        return 0
    return max(0, round(value))
