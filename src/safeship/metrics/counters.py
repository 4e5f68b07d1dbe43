"""Counters added up in the history store: Prometheus queries and canary-analysis results.

These figures have no history row to derive them from (unlike deployments and
smoke tests), yet they must be running totals too, or a short-lived CI process
would push counts that restart at 0 every run. So each process counts in memory
(`PendingCounters`) and adds what it counted to the store's `counters` table in
one transaction per `flush`; the collector exports the store's totals plus what is
still pending, so a scrape is never behind and never counts anything twice.

Stored series: `prometheus_query_total{workflow,result}`, the query-duration
histogram as cumulative `prometheus_query_duration_seconds_bucket{workflow,le}`
rows plus its `_count{workflow}` and `_sum{workflow}`, all with environment "",
and `canary_analysis_total{check,result}` per environment; `service` and
`environment` are columns of their own, not labels.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable

from safeship.metrics.names import (
    CANARY_ANALYSIS_TOTAL,
    PROMETHEUS_QUERY_DURATION_BUCKETS,
    PROMETHEUS_QUERY_DURATION_SECONDS,
    PROMETHEUS_QUERY_TOTAL,
    _le,
)
from safeship.store.interface import CounterIncrement, CounterRecord, Store, canonical_labels

QUERY_DURATION_BUCKET = PROMETHEUS_QUERY_DURATION_SECONDS + "_bucket"
QUERY_DURATION_COUNT = PROMETHEUS_QUERY_DURATION_SECONDS + "_count"
QUERY_DURATION_SUM = PROMETHEUS_QUERY_DURATION_SECONDS + "_sum"
#: The `environment` of a series whose metric has no environment label.
NO_ENVIRONMENT = ""

# (service, environment, name, canonical labels)
_Key = tuple[str, str, str, str]


class PendingCounters:
    """Counter increments recorded by this process and not yet written to the store.

    Thread-safe. `flush` writes them in one `Store.add_to_counters` call and keeps
    them if that fails; `totals` is the store's counters plus the pending ones, read
    so that a concurrent flush is seen either entirely or not at all.
    """

    def __init__(self) -> None:
        self._values: dict[_Key, float] = {}
        self._lock = threading.Lock()  # guards _values; never held during store I/O
        self._flush_lock = threading.Lock()  # one flush at a time; totals wait for it

    def record_prometheus_query(
        self, service: str, workflow: str, result: str, duration: float
    ) -> None:
        """One query: its result counted, its duration observed in the histogram."""
        labels = {"workflow": workflow}
        rows: list[tuple[str, dict[str, str], float]] = [
            (PROMETHEUS_QUERY_TOTAL, {**labels, "result": result}, 1.0)
        ]
        # Cumulative buckets, as Prometheus expects: every bound at or above the duration.
        rows += [
            (QUERY_DURATION_BUCKET, {**labels, "le": _le(bound)}, 1.0)
            for bound in PROMETHEUS_QUERY_DURATION_BUCKETS
            if duration <= bound
        ]
        rows += [
            (QUERY_DURATION_BUCKET, {**labels, "le": "+Inf"}, 1.0),
            (QUERY_DURATION_COUNT, labels, 1.0),
            (QUERY_DURATION_SUM, labels, duration),
        ]
        self._add(service, NO_ENVIRONMENT, rows)

    def record_analysis(self, service: str, environment: str, check: str, result: str) -> None:
        """One canary-analysis check result."""
        self._add(
            service, environment, [(CANARY_ANALYSIS_TOTAL, {"check": check, "result": result}, 1.0)]
        )

    def _add(
        self, service: str, environment: str, rows: Iterable[tuple[str, dict[str, str], float]]
    ) -> None:
        with self._lock:
            for name, labels, value in rows:
                key = (service, environment, name, canonical_labels(labels))
                self._values[key] = self._values.get(key, 0.0) + value

    def increments(self) -> list[CounterIncrement]:
        """The pending increments (a copy)."""
        with self._lock:
            return [_increment(key, value) for key, value in sorted(self._values.items())]

    def flush(self, store: Store) -> None:
        """Add the pending increments to `store` in one transaction, then forget them.

        Nothing pending means no store call. On failure (`StoreError`) they stay
        pending, together with whatever was recorded meanwhile, for the next flush.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._values = self._values, {}
            if not batch:
                return
            try:
                store.add_to_counters([_increment(key, value) for key, value in batch.items()])
            except BaseException:
                with self._lock:
                    for key, value in batch.items():
                        self._values[key] = value + self._values.get(key, 0.0)
                raise

    def totals(self, store: Store, service: str | None = None) -> list[CounterRecord]:
        """The store's counters plus the pending increments (of `service`, if given)."""
        with self._flush_lock:
            stored = store.counters(service=service)
            with self._lock:
                pending = dict(self._values)
        merged: dict[_Key, float] = {}
        for record in stored:
            key = (record.service, record.environment, record.name, canonical_labels(record.labels))
            merged[key] = merged.get(key, 0.0) + record.value
        for key, value in pending.items():
            if service is None or key[0] == service:
                merged[key] = merged.get(key, 0.0) + value
        return [
            CounterRecord(key[0], key[1], key[2], _labels(key[3]), value)
            for key, value in sorted(merged.items())
        ]


def _increment(key: _Key, value: float) -> CounterIncrement:
    return CounterIncrement(key[0], key[1], key[2], _labels(key[3]), value)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(text)
    return labels
