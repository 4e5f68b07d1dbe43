"""`StoreCollector`: safeship's cumulative metrics, read from the history store.

The deployment and smoke-test metrics are derived from the history records; the
Prometheus query and canary-analysis counters are the store's `counters` plus the
increments this process has not flushed yet (see `safeship.metrics.counters`).
Why they are read from the store rather than counted in-process is explained in the
`safeship.metrics` docstring.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from safeship.clock import Clock, SystemClock
from safeship.metrics.counters import (
    QUERY_DURATION_BUCKET,
    QUERY_DURATION_SUM,
    PendingCounters,
)
from safeship.metrics.names import (
    _SECONDS_PER_HOUR,
    ANALYSIS_RESULTS,
    CANARY_ANALYSIS_TOTAL,
    DEPLOYMENT_DURATION_BUCKETS,
    DEPLOYMENT_DURATION_SECONDS,
    DEPLOYMENT_FREQUENCY,
    DEPLOYMENT_ROLLBACK_TOTAL,
    DEPLOYMENT_STATUSES,
    DEPLOYMENT_TOTAL,
    GRAFANA_UPDATE_RESULTS,
    GRAFANA_UPDATE_TOTAL,
    OUTCOME_STATUS,
    PROMETHEUS_QUERY_DURATION_BUCKETS,
    PROMETHEUS_QUERY_DURATION_SECONDS,
    PROMETHEUS_QUERY_RESULTS,
    PROMETHEUS_QUERY_TOTAL,
    ROLLBACK_REASONS,
    ROLLOUT_IN_PROGRESS,
    ROLLOUT_STARTED_TIMESTAMP_SECONDS,
    SMOKE_TEST_DURATION_BUCKETS,
    SMOKE_TEST_DURATION_SECONDS,
    SMOKE_TEST_TOTAL,
    _is_finished,
    _le,
)
from safeship.store.interface import CounterRecord, DeploymentRecord, SmokeTestRecord, Store

_DEPLOYMENT_LABELS = ("service", "environment")


def _histogram_buckets(
    values: Iterable[float], bounds: tuple[float, ...]
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative `(le, count)` pairs ending with `+Inf`, and the sum of `values`."""
    observed = list(values)
    buckets: list[tuple[str, float]] = [
        (_le(bound), float(sum(1 for v in observed if v <= bound))) for bound in bounds
    ]
    buckets.append(("+Inf", float(len(observed))))
    return buckets, float(sum(observed))


def _rollback_reason(record: DeploymentRecord) -> str:
    """The `reason` label of a rolled-back/aborted deployment.

    Reasons outside the vocabulary (or none at all) are counted as `manual`: the
    automatic triggers always store one of the known reasons, and an unbounded
    label value would explode the series count.
    """
    if record.reason in ROLLBACK_REASONS:
        return record.reason
    return "manual"


@dataclass
class _Families:
    """The store-derived metric families, empty until the collector fills them."""

    total: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            DEPLOYMENT_TOTAL,
            "Finished deployments by status (cumulative, read from the history store).",
            labels=(*_DEPLOYMENT_LABELS, "status"),
        )
    )
    duration: HistogramMetricFamily = field(
        default_factory=lambda: HistogramMetricFamily(
            DEPLOYMENT_DURATION_SECONDS,
            "Duration of finished deployments in seconds (from the history store).",
            labels=_DEPLOYMENT_LABELS,
        )
    )
    rollbacks: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            DEPLOYMENT_ROLLBACK_TOTAL,
            "Rolled-back or aborted deployments by reason (from the history store).",
            labels=(*_DEPLOYMENT_LABELS, "reason"),
        )
    )
    frequency: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            DEPLOYMENT_FREQUENCY,
            "Successful deployments per hour over the frequency window.",
            labels=_DEPLOYMENT_LABELS,
        )
    )
    smoke_total: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            SMOKE_TEST_TOTAL,
            "Smoke-test runs by result (cumulative, read from the history store).",
            labels=(*_DEPLOYMENT_LABELS, "result"),
        )
    )
    smoke_duration: HistogramMetricFamily = field(
        default_factory=lambda: HistogramMetricFamily(
            SMOKE_TEST_DURATION_SECONDS,
            "Duration of smoke-test runs in seconds (from the history store).",
            labels=_DEPLOYMENT_LABELS,
        )
    )
    in_progress: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            ROLLOUT_IN_PROGRESS,
            "1 while an unfinished (running or paused) deployment exists, else 0.",
            labels=_DEPLOYMENT_LABELS,
        )
    )
    started: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            ROLLOUT_STARTED_TIMESTAMP_SECONDS,
            "Start time (unix seconds) of the oldest unfinished deployment.",
            labels=_DEPLOYMENT_LABELS,
        )
    )

    query_total: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            PROMETHEUS_QUERY_TOTAL,
            "Prometheus queries made by safeship, by result (cumulative, from the store).",
            labels=("service", "workflow", "result"),
        )
    )
    query_duration: HistogramMetricFamily = field(
        default_factory=lambda: HistogramMetricFamily(
            PROMETHEUS_QUERY_DURATION_SECONDS,
            "Duration of Prometheus queries made by safeship, in seconds (from the store).",
            labels=("service", "workflow"),
        )
    )
    grafana_updates: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            GRAFANA_UPDATE_TOTAL,
            "Dashboard pushes and restores in Grafana, by result (cumulative, from the store).",
            labels=("service", "action", "result"),
        )
    )
    analysis_total: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            CANARY_ANALYSIS_TOTAL,
            "Canary-analysis check evaluations, by check and result (cumulative, from the store).",
            labels=("service", "environment", "check", "result"),
        )
    )

    def all(self) -> tuple[Metric, ...]:
        return (
            self.total,
            self.duration,
            self.rollbacks,
            self.frequency,
            self.smoke_total,
            self.smoke_duration,
            self.in_progress,
            self.started,
            self.query_total,
            self.query_duration,
            self.grafana_updates,
            self.analysis_total,
        )

    def add_counters(self, records: Iterable[CounterRecord]) -> None:
        """Fill the query and analysis families from the stored (plus pending) counters.

        Like the other families, every result of the vocabulary gets a series (0 if
        it never happened) for each (service, workflow) and (service, environment,
        check) seen, and a histogram always has all its buckets.
        """
        queries: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        durations: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        duration_sums: dict[tuple[str, str], float] = defaultdict(float)
        analyses: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        updates: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for record in records:
            labels = record.labels
            workflow = labels.get("workflow", "")
            if record.name == PROMETHEUS_QUERY_TOTAL and "result" in labels:
                queries[(record.service, workflow)][labels["result"]] = record.value
            elif record.name == QUERY_DURATION_BUCKET and "le" in labels:
                durations[(record.service, workflow)][labels["le"]] = record.value
            elif record.name == QUERY_DURATION_SUM:
                duration_sums[(record.service, workflow)] += record.value
            elif record.name == GRAFANA_UPDATE_TOTAL and "result" in labels:
                updates[(record.service, labels.get("action", ""))][labels["result"]] = record.value
            elif record.name == CANARY_ANALYSIS_TOTAL and "result" in labels:
                check = (record.service, record.environment, labels.get("check", ""))
                analyses[check][labels["result"]] = record.value

        for key in sorted(set(queries) | set(durations)):
            counts = {**dict.fromkeys(PROMETHEUS_QUERY_RESULTS, 0.0), **queries.get(key, {})}
            for result, value in counts.items():
                self.query_total.add_metric([*key, result], value)
            observed = durations.get(key, {})
            bounds = [*(_le(b) for b in PROMETHEUS_QUERY_DURATION_BUCKETS), "+Inf"]
            buckets = [(le, observed.get(le, 0.0)) for le in bounds]
            self.query_duration.add_metric(list(key), buckets, duration_sums.get(key, 0.0))
        for update_key in sorted(updates):
            counts = {**dict.fromkeys(GRAFANA_UPDATE_RESULTS, 0.0), **updates[update_key]}
            for result, value in counts.items():
                self.grafana_updates.add_metric([*update_key, result], value)
        for check_key in sorted(analyses):
            counts = {**dict.fromkeys(ANALYSIS_RESULTS, 0.0), **analyses[check_key]}
            for result, value in counts.items():
                self.analysis_total.add_metric([*check_key, result], value)


class StoreCollector:
    """A prometheus_client collector that derives deployment metrics from the store.

    Every `collect()` (each scrape or push) reads the history store and returns
    cumulative totals, so short-lived processes export the true running totals
    instead of per-process counts that restart at zero (see the `safeship.metrics` docstring).
    With `service` set only that service's history is read.

    `pending` holds the query and analysis counts this process recorded but has not
    flushed to the store yet; they are added to the stored totals, so a scrape
    before a flush is not behind. A collector without one gets an empty one.

    Series are emitted for every `(service, environment)` the store has seen, with
    explicit zeros for statuses/reasons/results that never happened: a counter
    series that already exists at 0 lets `increase()` see its first increment.
    """

    def __init__(
        self,
        store: Store,
        service: str | None = None,
        clock: Clock | None = None,
        frequency_window: float = 86400,
        *,
        pending: PendingCounters | None = None,
    ) -> None:
        if frequency_window <= 0:
            raise ValueError("frequency_window must be positive")
        self.store = store
        self.service = service
        self.clock: Clock = clock or SystemClock()
        self.frequency_window = frequency_window
        self.pending = pending if pending is not None else PendingCounters()

    def describe(self) -> Iterable[Metric]:
        """Empty families, so the registry can detect name clashes without a store query."""
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        """Read the store and build the families; store errors fail the scrape/push.

        Failing loudly is deliberate: a push with the totals missing would replace
        the Pushgateway group and look like a counter reset.
        """
        deployments = self.store.list_deployments(service=self.service)
        smoke_tests = self.store.smoke_tests(service=self.service)
        counters = self.pending.totals(self.store, self.service)
        now = self.clock.now()
        since = now - self.frequency_window

        by_pair: dict[tuple[str, str], list[DeploymentRecord]] = defaultdict(list)
        for record in deployments:
            by_pair[(record.service, record.environment)].append(record)
        smoke_by_pair: dict[tuple[str, str], list[SmokeTestRecord]] = defaultdict(list)
        for smoke in smoke_tests:
            smoke_by_pair[(smoke.service, smoke.environment)].append(smoke)
        pairs = sorted(set(by_pair) | set(smoke_by_pair))

        f = _Families()
        for pair in pairs:
            records = by_pair.get(pair, [])
            finished = [r for r in records if _is_finished(r)]

            statuses = dict.fromkeys(DEPLOYMENT_STATUSES, 0)
            reasons = dict.fromkeys(ROLLBACK_REASONS, 0)
            for record in finished:
                status = OUTCOME_STATUS[record.outcome or ""]
                statuses[status] += 1
                if status == "rolled_back":
                    reasons[_rollback_reason(record)] += 1
            for status, count in statuses.items():
                f.total.add_metric([*pair, status], float(count))
            for reason, count in reasons.items():
                f.rollbacks.add_metric([*pair, reason], float(count))

            durations = [r.duration for r in finished if r.duration is not None]
            buckets, total_seconds = _histogram_buckets(durations, DEPLOYMENT_DURATION_BUCKETS)
            f.duration.add_metric(list(pair), buckets, total_seconds)

            promoted = sum(
                1
                for r in finished
                if r.outcome == "promoted" and r.finished_at is not None and r.finished_at >= since
            )
            f.frequency.add_metric(
                list(pair), promoted / (self.frequency_window / _SECONDS_PER_HOUR)
            )

            unfinished = [r for r in records if not _is_finished(r)]
            f.in_progress.add_metric(list(pair), 1.0 if unfinished else 0.0)
            if unfinished:
                f.started.add_metric(list(pair), min(r.started_at for r in unfinished))

            smokes = smoke_by_pair.get(pair, [])
            passed = sum(1 for s in smokes if s.passed)
            f.smoke_total.add_metric([*pair, "passed"], float(passed))
            f.smoke_total.add_metric([*pair, "failed"], float(len(smokes) - passed))
            buckets, total_seconds = _histogram_buckets(
                (s.duration for s in smokes), SMOKE_TEST_DURATION_BUCKETS
            )
            f.smoke_duration.add_metric(list(pair), buckets, total_seconds)

        f.add_counters(counters)
        return f.all()
