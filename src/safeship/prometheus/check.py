"""`safeship check prometheus`: is Prometheus there, and does every analysis query work?

The original pipeline queried Prometheus blind: a misspelt metric returned
nothing, nothing read as an error rate of 0, and every canary passed. This
check runs each analysis query the config defines, for every environment and
both versions, and when one returns nothing it says why: the metric is
absent, or a label does not exist, or a label value matches nothing (with the
values that do exist). It also flags ranges too short for the scrape interval
and counters used without `rate`/`increase`.

Prometheus being unreachable is a warning, not a failure (the original plan's
graceful skip); the caller decides whether `--strict` makes it fatal.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from safeship.config import (
    Config,
    EnvironmentConfig,
    PrometheusProviderSettings,
    PrometheusSettings,
)
from safeship.errors import ConfigError
from safeship.prometheus.client import (
    PrometheusClient,
    PrometheusError,
    PrometheusRejected,
    PromQLError,
    Sample,
)
from safeship.prometheus.promql import (
    COUNTER_FUNCTIONS,
    Matcher,
    Selector,
    selectors,
)
from safeship.providers.prometheus import ERROR_LABEL_PRESENT, PrometheusQueries, Track
from safeship.redact import redact_url
from safeship.rules.generate import RULES_FILE

LOOKBACK_SECONDS = 300.0
"""How far back "does this query return data" looks: five minutes of traffic."""


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str  # reachability | rules | query | window | counter; router | hooks | scrape
    status: Status
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "subject": self.subject,
            "message": self.message,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class PrometheusReport:
    url: str | None
    reachable: bool = False
    version: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.status is Status.FAIL for f in self.findings)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.findings.append(Finding(*args, **kwargs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "prometheus_reachable": self.reachable,
            "version": self.version,
            "ok": not self.failed,
            "findings": [f.to_dict() for f in self.findings],
        }


def check_prometheus(
    settings: PrometheusSettings,
    config: Config | None,
    *,
    client: PrometheusClient | None = None,
    promtool: str | None = None,
    now: float | None = None,
) -> PrometheusReport:
    """Every Prometheus check that can run with what is given; never raises for Prometheus."""
    report = PrometheusReport(url=redact_url(settings.url) if settings.url else None)
    _check_rule_files(report, settings, promtool or shutil.which("promtool"))
    at = time.time() if now is None else now
    analysed = (
        [
            env
            for env in (config.for_environment(n) for n in config.environments)
            if isinstance(env.provider, PrometheusProviderSettings)
        ]
        if config is not None
        else []
    )
    own_servers = [e for e in analysed if e.prometheus.url not in (None, settings.url)]
    shared = [e for e in analysed if e not in own_servers]
    for env in own_servers:
        _check_other_server(report, env, at)
    if not settings.url:
        if not own_servers:
            report.add(
                "reachability",
                Status.WARN,
                "prometheus",
                "no Prometheus URL: set PROMETHEUS_URL or prometheus.url; Prometheus checks "
                "skipped",
            )
        return report
    own_client = client is None
    try:
        client = client or PrometheusClient(settings, workflow="check")
    except ConfigError as exc:
        report.add("reachability", Status.FAIL, "prometheus", str(exc))
        return report
    try:
        _check_reachable(report, client)
        if report.reachable:
            scrape = _scrape_interval(client, settings)
            for env in shared:
                QueryChecker(client, env, report, at, scrape).run()
    finally:
        if own_client:
            client.close()
    return report


def _check_other_server(report: PrometheusReport, env: EnvironmentConfig, at: float) -> None:
    """An environment with a Prometheus of its own is checked against that one."""
    subject = f"{env.environment} prometheus"
    try:
        with PrometheusClient(env.prometheus, workflow="check") as client:
            if not client.ready():
                report.add("reachability", Status.WARN, subject, "reachable but not ready yet")
                return
            scrape = _scrape_interval(client, env.prometheus)
            QueryChecker(client, env, report, at, scrape).run()
            report.reachable = True  # at least one configured Prometheus answered
    except PrometheusError as exc:
        report.add("reachability", Status.WARN, subject, f"unreachable ({exc.kind}): {exc}")
    except (ConfigError, PrometheusRejected) as exc:
        report.add("reachability", Status.FAIL, subject, str(exc))


def _check_reachable(report: PrometheusReport, client: PrometheusClient) -> None:
    try:
        ready = client.ready()
        report.version = str(client.buildinfo().get("version"))
    except PrometheusError as exc:
        report.add("reachability", Status.WARN, "prometheus", f"unreachable ({exc.kind}): {exc}")
        return
    except PrometheusRejected as exc:
        report.add("reachability", Status.FAIL, "prometheus", f"refused: {exc}")
        return
    report.reachable = ready
    if ready:
        report.add("reachability", Status.OK, "prometheus", f"reachable, version {report.version}")
    else:
        report.add("reachability", Status.WARN, "prometheus", "reachable but not ready yet")


def _check_rule_files(
    report: PrometheusReport, settings: PrometheusSettings, promtool: str | None
) -> None:
    # The default entry is only looked for; a file the config names must be there.
    named = "rule_files" in settings.model_fields_set
    for index, name in enumerate(settings.rule_files):
        path = Path(name)
        if not path.exists():
            if named:
                report.add(
                    "rules",
                    Status.FAIL,
                    name,
                    f"prometheus.rule_files[{index}]: no such file in {Path.cwd()} (rule files "
                    "are read from the working directory): fix the entry, or write the file "
                    f"(`safeship rules generate` writes {RULES_FILE})",
                )
            continue
        if promtool is None:
            report.add(
                "rules", Status.WARN, name, "promtool not installed (Debian package `prometheus`)"
            )
            continue
        try:
            proc = subprocess.run(
                [promtool, "check", "rules", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            report.add("rules", Status.FAIL, name, f"promtool could not check it: {exc}")
            continue
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode == 0:
            report.add("rules", Status.OK, name, output.splitlines()[-1] if output else "valid")
        else:
            report.add("rules", Status.FAIL, name, f"promtool check rules failed: {output}")


def label_absent(name: str, label: str, labels: Sequence[str]) -> str:
    """Why a matcher selects nothing when no series has its label: the labels there are.

    The scrape provider's `match` is told the same way (`safeship check`).
    """
    return f"no series of {name} has a label `{label}` (labels: {', '.join(labels) or 'none'})"


def value_unmatched(
    name: str, matcher: Matcher, values: Sequence[str], *, with_others: bool
) -> str:
    """Why a matcher selects nothing when its label has other values: those values
    (`with_others`: among the series the matchers before it select)."""
    return (
        f"{name}: {matcher.render()} matches nothing; `{matcher.label}` values "
        f"{'with the other matchers ' if with_others else ''}are: {', '.join(values[:20])}"
    )


def _scrape_interval(client: PrometheusClient, settings: PrometheusSettings) -> float | None:
    """The longest scrape interval among active targets (the cautious one), or the config's."""
    if settings.scrape_interval is not None:
        return settings.scrape_interval
    try:
        return client.longest_scrape_interval()
    except (PrometheusError, PrometheusRejected):
        return None


def _shape_problem(kind: str, samples: tuple[Sample, ...]) -> str | None:
    """What the provider would refuse in a non-empty answer (the rollout reads it the same way)."""
    if kind == "latency":
        if samples and not all("le" in s.labels for s in samples):
            return "a latency query must return one series per `le` bucket (sum by (le) (...))"
        return None
    if len(samples) > 1:
        return (
            f"returns {len(samples)} series where the analysis needs one: aggregate it "
            "(e.g. sum(...))"
        )
    return None


class QueryChecker:
    """Runs and diagnoses one environment's analysis queries."""

    def __init__(
        self,
        client: PrometheusClient,
        env: EnvironmentConfig,
        report: PrometheusReport,
        at: float,
        scrape_interval: float | None,
    ) -> None:
        assert isinstance(env.provider, PrometheusProviderSettings)
        self.client = client
        self.env = env
        self.provider = env.provider
        self.report = report
        self.at = at
        self.scrape_interval = scrape_interval
        self.queries = PrometheusQueries(
            env.provider, service=env.service, environment=env.environment
        )
        self.queries.any_slot = True
        self._metadata: dict[str, list[dict[str, str]]] | None = None

    def run(self) -> None:
        self._check_window()
        for track in ("baseline", "canary"):
            for kind, query in self.queries.all(track, LOOKBACK_SECONDS).items():
                subject = f"{self.env.environment} {track} {kind}"
                self._check_query(subject, track, kind, query)

    def _check_window(self) -> None:
        """The first analysis window lasts one interval; increase() needs two scrapes in it."""
        interval = self.env.canary.interval
        if self.scrape_interval is None:
            return
        if interval < 2 * self.scrape_interval:
            self.report.add(
                "window",
                Status.WARN,
                f"{self.env.environment} canary.interval",
                f"the first analysis window ({interval:g}s) is shorter than 2x the scrape "
                f"interval ({self.scrape_interval:g}s): rate()/increase() can return nothing; "
                f"set canary.interval to at least {2 * self.scrape_interval:g}s",
            )

    def _check_query(self, subject: str, track: Track, kind: str, query: str) -> None:
        try:
            self.client.format_query(query)
            result = self.client.query(query, self.at)
        except (PromQLError, PrometheusRejected) as exc:
            self.report.add("query", Status.FAIL, subject, str(exc), {"query": query})
            return
        except PrometheusError as exc:
            self.report.add("query", Status.FAIL, subject, f"query failed: {exc}", {"query": query})
            return
        self._check_ranges_and_counters(subject, query)
        shape = _shape_problem(kind, result.samples)
        if shape is not None:
            self.report.add("query", Status.FAIL, subject, shape, {"query": query})
            return
        values = [s.value for s in result.samples]
        if values and not all(math.isnan(v) for v in values):
            shown = f"{values[0]:.4g}" if len(values) == 1 else f"{len(values)} series"
            self.report.add(
                "query", Status.OK, subject, f"returns data ({shown})", {"query": query}
            )
            return
        if values:
            self.report.add("query", Status.FAIL, subject, "returns NaN only", {"query": query})
            return
        self._diagnose_empty(subject, track, kind, query)

    def _diagnose_empty(self, subject: str, track: Track, kind: str, query: str) -> None:
        details: dict[str, Any] = {"query": query}
        for selector in selectors(query):
            problem = self._selector_problem(selector)
            if problem is None:
                continue
            status, message = problem
            if status is Status.FAIL and track == "canary" and self._only_canary_missing(selector):
                status = Status.WARN
                message += " (no canary traffic yet: expected before a rollout)"
            self.report.add("query", status, subject, message, details)
            return
        if kind == "errors" and self.provider.queries.errors is not None:
            self.report.add(
                "query",
                Status.FAIL,
                subject,
                "a custom errors query must itself return 0 when nothing failed: an empty "
                "result is no data, so every hold would end inconclusive",
                details,
            )
            return
        if kind == "errors" and self._error_label_present(track):
            self.report.add(
                "query",
                Status.OK,
                subject,
                f"no error series in the last {LOOKBACK_SECONDS:g}s; the request series carry "
                f"the `{self.provider.error_label}` label, so this reads as zero errors",
                details,
            )
            return
        self.report.add(
            "query",
            Status.FAIL,
            subject,
            f"returns no data over the last {LOOKBACK_SECONDS:g}s although its series exist "
            "(no samples in the window?)",
            details,
        )

    def _selector_problem(self, selector: Selector) -> tuple[Status, str] | None:
        """Why a selector matches nothing: metric absent, label missing, or value unmatched."""
        start = self.at - LOOKBACK_SECONDS
        name = selector.metric or "series"
        everything = self._series(Selector(selector.metric, (), None, None).render(), start)
        if selector.metric is not None and not everything:
            return Status.FAIL, (
                f"metric {selector.metric} is absent: no series in the last "
                f"{LOOKBACK_SECONDS:g}s (misspelt, or not scraped?)"
            )
        kept: list[Matcher] = []
        for matcher in selector.matchers:
            if matcher.op in ("!=", "!~") or matcher.label == "__name__":
                kept.append(matcher)
                continue
            matched = self._series(selector.render(only=(*kept, matcher)), start)
            if matched:
                kept.append(matcher)
                continue
            candidates = self._series(selector.render(only=tuple(kept)), start) or everything
            values = sorted({s[matcher.label] for s in candidates if matcher.label in s})
            if not values:
                labels = sorted({k for s in candidates for k in s if k != "__name__"})
                return Status.FAIL, label_absent(name, matcher.label, labels)
            return Status.FAIL, value_unmatched(name, matcher, values, with_others=bool(kept))
        return None

    def _only_canary_missing(self, selector: Selector) -> bool:
        canary = set(self.provider.canary_labels.items())
        rest = tuple(m for m in selector.matchers if (m.label, m.value) not in canary)
        start = self.at - LOOKBACK_SECONDS
        return len(rest) < len(selector.matchers) and bool(
            self._series(selector.render(only=rest), start)
        )

    def _error_label_present(self, track: Track) -> bool:
        probe = self.queries.render(ERROR_LABEL_PRESENT, track, LOOKBACK_SECONDS)
        try:
            return bool(self.client.query(probe, self.at).value())
        except (PrometheusError, PromQLError, PrometheusRejected):
            return False

    def _check_ranges_and_counters(self, subject: str, query: str) -> None:
        for selector in selectors(query):
            if (
                selector.range_seconds is not None
                and self.scrape_interval is not None
                and selector.range_seconds != LOOKBACK_SECONDS
                and selector.range_seconds < 2 * self.scrape_interval
            ):
                self.report.add(
                    "window",
                    Status.WARN,
                    subject,
                    f"range [{selector.range_seconds:g}s] on {selector.metric} is shorter than "
                    f"2x the scrape interval ({self.scrape_interval:g}s)",
                    {"query": query},
                )
            kind = self._metric_type(selector.metric)
            if kind == "counter" and (
                selector.range_seconds is None or selector.function not in COUNTER_FUNCTIONS
            ):
                self.report.add(
                    "counter",
                    Status.WARN,
                    subject,
                    f"{selector.metric} is a counter used without rate()/increase(): its raw "
                    "value only says how long the process has run",
                    {"query": query},
                )

    def _metric_type(self, metric: str | None) -> str | None:
        """A metric's type from the metadata API; histogram/summary parts count as counters."""
        if metric is None:
            return None
        if self._metadata is None:
            try:
                self._metadata = self.client.metadata()
            except (PrometheusError, PrometheusRejected):
                self._metadata = {}
        for suffix in ("", "_bucket", "_count", "_sum", "_total"):
            if suffix and not metric.endswith(suffix):
                continue
            base = metric.removesuffix(suffix) if suffix else metric
            for candidate in (metric, base):
                entries = self._metadata.get(candidate)
                if entries:
                    kind = entries[0].get("type")
                    if kind in ("histogram", "summary") and metric != candidate:
                        return "counter"
                    return kind
        return None

    def _series(self, match: str, start: float) -> list[dict[str, str]]:
        try:
            return self.client.series(match, start=start, end=self.at)
        except (PrometheusError, PromQLError, PrometheusRejected):
            return []
