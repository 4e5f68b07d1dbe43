"""Query and analysis counters: counted in memory, flushed to the store, running totals."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from safeship import metrics as m
from safeship.clock import VirtualClock
from safeship.config import PushgatewaySettings
from safeship.errors import StoreError
from safeship.metrics.push import push_or_warn
from safeship.store import open_store
from safeship.store.interface import CounterIncrement, Store
from safeship.testing import MemoryStore

SERVICE = "checkout"
ENV = "production"
QUERY = {"service": SERVICE, "workflow": "analysis"}
CHECK = {"service": SERVICE, "environment": ENV, "check": "error_rate"}


class CountingStore(MemoryStore):
    """Counts `add_to_counters` calls; `fail_next` makes the next ones raise StoreError."""

    def __init__(self) -> None:
        super().__init__()
        self.counter_calls: list[list[CounterIncrement]] = []
        self.fail_next = 0

    def add_to_counters(self, increments: Sequence[CounterIncrement]) -> None:
        self.counter_calls.append(list(increments))
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StoreError("history store: adding to counters failed: disk full")
        super().add_to_counters(increments)


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = (
        MemoryStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path / 'h.db'}")
    )
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _global_registry_untouched() -> Iterator[None]:
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    yield
    m.shutdown_metrics()
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before


def make(
    store: Store, service: str | None = SERVICE
) -> tuple[CollectorRegistry, m.DeploymentMetrics]:
    registry = CollectorRegistry()
    return registry, m.DeploymentMetrics(registry, store, service=service, clock=VirtualClock())


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    return registry.get_sample_value(name, labels)


def query_figures(registry: CollectorRegistry) -> dict[str, float | None]:
    """Every sample of the three families for QUERY/CHECK, by a short name."""
    figures: dict[str, float | None] = {
        f"total:{r}": sample(registry, "prometheus_query_total", {**QUERY, "result": r})
        for r in m.PROMETHEUS_QUERY_RESULTS
    }
    for le in ("0.1", "0.5", "1.0", "2.0", "5.0", "10.0", "+Inf"):
        figures[f"le:{le}"] = sample(
            registry, "prometheus_query_duration_seconds_bucket", {**QUERY, "le": le}
        )
    figures["count"] = sample(registry, "prometheus_query_duration_seconds_count", QUERY)
    figures["sum"] = sample(registry, "prometheus_query_duration_seconds_sum", QUERY)
    for r in m.ANALYSIS_RESULTS:
        figures[f"check:{r}"] = sample(registry, "canary_analysis_total", {**CHECK, "result": r})
    return figures


def record_run(dm: m.DeploymentMetrics) -> None:
    """What one CI run counts: three queries and two analysis results."""
    dm.record_prometheus_query("analysis", "success", 0.05)
    dm.record_prometheus_query("analysis", "success", 0.7)
    dm.record_prometheus_query("analysis", "timeout", 10.0)
    dm.record_analysis(ENV, "error_rate", "pass")
    dm.record_analysis(ENV, "error_rate", "fail")


ONE_RUN = {
    "total:success": 2,
    "total:failed": 0,
    "total:timeout": 1,
    "le:0.1": 1,
    "le:0.5": 1,
    "le:1.0": 2,
    "le:2.0": 2,
    "le:5.0": 2,
    "le:10.0": 3,
    "le:+Inf": 3,
    "count": 3,
    "sum": pytest.approx(10.75),
    "check:pass": 1,
    "check:fail": 1,
    "check:inconclusive": 0,
    "check:error": 0,
}


def twice(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v * 2 if isinstance(v, int) else pytest.approx(21.5) for k, v in figures.items()}


def test_flushed_counts_are_running_totals_in_a_new_process(store: Store) -> None:
    """The CI case: each run is a new process, yet the three families keep growing."""
    registry1, dm1 = make(store)
    record_run(dm1)
    dm1.flush()
    assert query_figures(registry1) == ONE_RUN

    registry2, dm2 = make(store)  # a fresh process over the same history
    assert query_figures(registry2) == ONE_RUN
    record_run(dm2)
    assert query_figures(registry2) == twice(ONE_RUN)  # pending counts are included
    dm2.flush()
    assert query_figures(registry2) == twice(ONE_RUN)  # and not counted twice once flushed
    assert query_figures(make(store)[0]) == twice(ONE_RUN)


def test_a_scrape_before_the_flush_includes_pending_counts(store: Store) -> None:
    registry, dm = make(store)
    record_run(dm)
    assert store.counters() == []
    assert query_figures(registry) == ONE_RUN
    text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE prometheus_query_total counter" in text
    assert "# TYPE prometheus_query_duration_seconds histogram" in text
    assert "# TYPE canary_analysis_total counter" in text
    assert (
        'prometheus_query_duration_seconds_bucket{le="0.5",service="checkout",workflow="analysis"}'
        " 1.0" in text
    )
    # Unflushed counts of this process only: another one over the store sees nothing yet.
    assert query_figures(make(store)[0])["count"] is None


def test_the_stored_histogram_is_cumulative_buckets_count_and_sum(store: Store) -> None:
    _, dm = make(store)
    dm.record_prometheus_query("analysis", "failed", 1.5)
    dm.flush()
    rows = {
        (r.name, tuple(sorted(r.labels.items()))): r.value
        for r in store.counters()
        if r.environment == ""
    }
    workflow = (("workflow", "analysis"),)
    assert rows == {
        ("prometheus_query_total", (("result", "failed"), *workflow)): 1,
        ("prometheus_query_duration_seconds_bucket", (("le", "2.0"), *workflow)): 1,
        ("prometheus_query_duration_seconds_bucket", (("le", "5.0"), *workflow)): 1,
        ("prometheus_query_duration_seconds_bucket", (("le", "10.0"), *workflow)): 1,
        ("prometheus_query_duration_seconds_bucket", (("le", "+Inf"), *workflow)): 1,
        ("prometheus_query_duration_seconds_count", workflow): 1,
        ("prometheus_query_duration_seconds_sum", workflow): 1.5,
    }
    assert all(r.service == SERVICE for r in store.counters())


def test_analysis_counts_are_kept_per_environment(store: Store) -> None:
    _, dm = make(store)
    dm.record_analysis(ENV, "latency", "pass")
    dm.record_analysis("staging", "latency", "pass")
    dm.flush()
    assert sorted((r.environment, r.name, r.labels["check"]) for r in store.counters()) == [
        ("production", "canary_analysis_total", "latency"),
        ("staging", "canary_analysis_total", "latency"),
    ]


def test_every_result_and_bucket_has_a_series_from_the_first_count(store: Store) -> None:
    registry, dm = make(store)
    assert query_figures(registry)["total:success"] is None  # nothing seen, no series
    dm.record_prometheus_query("analysis", "failed", 0.2)
    dm.record_analysis(ENV, "error_rate", "error")
    figures = query_figures(registry)
    assert figures["total:success"] == 0  # increase() will see the first success
    assert figures["total:timeout"] == 0
    assert figures["le:0.1"] == 0
    assert figures["check:pass"] == 0
    assert figures["check:error"] == 1


def test_one_store_call_per_flush_and_none_when_nothing_is_pending() -> None:
    store = CountingStore()
    _, dm = make(store)
    dm.flush()
    assert store.counter_calls == []
    record_run(dm)
    record_run(dm)
    dm.flush()
    assert len(store.counter_calls) == 1
    assert len(store.counter_calls[0]) == len(store.counters())  # one increment per series
    dm.flush()
    assert len(store.counter_calls) == 1


def test_a_failed_flush_keeps_the_counts_pending_for_the_next_one() -> None:
    store = CountingStore()
    registry, dm = make(store)
    record_run(dm)
    store.fail_next = 1
    with pytest.raises(StoreError, match="disk full"):
        dm.flush()
    assert store.counters() == []
    assert query_figures(registry) == ONE_RUN  # still exported, from memory
    record_run(dm)
    dm.flush()
    assert query_figures(make(store)[0]) == twice(ONE_RUN)
    assert query_figures(registry) == twice(ONE_RUN)


def test_a_service_filter_applies_to_pending_and_stored_counts_alike(store: Store) -> None:
    registry, dm = make(store)
    dm.record_analysis(ENV, "latency", "pass", service="billing")
    billing = {"service": "billing", "environment": ENV, "check": "latency", "result": "pass"}
    assert sample(registry, "canary_analysis_total", billing) is None
    dm.flush()
    assert sample(registry, "canary_analysis_total", billing) is None
    everything, _ = make(store, service=None)
    assert sample(everything, "canary_analysis_total", billing) == 1


def test_non_finite_or_negative_durations_are_refused(store: Store) -> None:
    _, dm = make(store)
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(ValueError, match="duration"):
            dm.record_prometheus_query("analysis", "success", bad)
    dm.flush()
    assert store.counters() == []


def test_concurrent_recording_flushing_and_scraping_lose_and_double_nothing() -> None:
    store = MemoryStore()
    registry, dm = make(store)
    stop = threading.Event()
    seen: list[float] = []

    def record() -> None:
        for _ in range(500):
            dm.record_analysis(ENV, "error_rate", "pass")

    def flush() -> None:
        while not stop.is_set():
            dm.flush()

    def scrape() -> None:
        while not stop.is_set():
            value = sample(registry, "canary_analysis_total", {**CHECK, "result": "pass"})
            seen.append(value or 0.0)

    recorders = [threading.Thread(target=record) for _ in range(4)]
    others = [threading.Thread(target=flush), threading.Thread(target=scrape)]
    for thread in [*recorders, *others]:
        thread.start()
    for thread in recorders:
        thread.join()
    stop.set()
    for thread in others:
        thread.join()
    dm.flush()
    assert seen == sorted(seen)  # a counter never seen going down (or double-counted)
    assert all(value <= 2000 for value in seen)
    assert [r.value for r in store.counters()] == [2000]


# --- push and shutdown flush ------------------------------------------------------------------


def capture(calls: list[str]) -> Callable[..., Callable[[], None]]:
    def handler(
        url: str, method: str, timeout: float | None, headers: list[Any], data: bytes
    ) -> Callable[[], None]:
        calls.append(data.decode())
        return lambda: None

    return handler


def test_push_flushes_before_pushing(store: Store) -> None:
    _, dm = make(store)
    record_run(dm)
    pushed: list[str] = []
    m.push_metrics("http://pushgw:9091", dm, ENV, handler=capture(pushed))
    assert {r.name for r in store.counters()} >= {
        "prometheus_query_total",
        "prometheus_query_duration_seconds_bucket",
        "canary_analysis_total",
    }
    [body] = pushed
    assert (
        'prometheus_query_total{result="success",service="checkout",workflow="analysis"} 2.0'
        in body
    )
    assert (
        'canary_analysis_total{check="error_rate",environment="production",result="fail",'
        'service="checkout"} 1.0' in body
    )

    # The next CI run pushes the running totals.
    _, dm2 = make(store)
    record_run(dm2)
    push_or_warn(PushgatewaySettings(url="http://pushgw:9091"), dm2, ENV, capture(pushed))
    assert (
        'prometheus_query_total{result="success",service="checkout",workflow="analysis"} 4.0'
        in pushed[1]
    )
    assert query_figures(make(store)[0]) == twice(ONE_RUN)


def test_a_failed_flush_pushes_nothing_and_only_warns() -> None:
    store = CountingStore()
    _, dm = make(store)
    record_run(dm)
    store.fail_next = 1
    pushed: list[str] = []
    with pytest.raises(StoreError):
        m.push_metrics("http://pushgw:9091", dm, ENV, handler=capture(pushed))
    assert pushed == []
    store.fail_next = 1
    warning = push_or_warn(PushgatewaySettings(url="http://pushgw:9091"), dm, ENV, capture(pushed))
    assert warning is not None
    assert "metrics not pushed" in warning
    assert "disk full" in warning
    assert pushed == []
    # Nothing was lost: the next push flushes and pushes everything.
    assert (
        push_or_warn(PushgatewaySettings(url="http://pushgw:9091"), dm, ENV, capture(pushed))
        is None
    )
    assert len(pushed) == 1
    assert query_figures(make(store)[0]) == ONE_RUN


def test_shutdown_metrics_flushes_the_current_metrics() -> None:
    store = CountingStore()
    m.initialize_metrics(store, service=SERVICE, registry=CollectorRegistry(), serve=False)
    m.record_prometheus_query("analysis", "success", 0.05)
    m.record_analysis(ENV, "error_rate", "pass")
    assert store.counters() == []
    m.shutdown_metrics()
    assert len(store.counter_calls) == 1
    assert query_figures(make(store)[0])["total:success"] == 1


def test_shutdown_metrics_warns_when_the_flush_fails(caplog: pytest.LogCaptureFixture) -> None:
    store = CountingStore()
    dm = m.initialize_metrics(store, service=SERVICE, registry=CollectorRegistry(), serve=False)
    m.record_analysis(ENV, "error_rate", "pass")
    store.fail_next = 1
    m.shutdown_metrics()
    assert "not saved to the history store" in caplog.text
    dm.flush()  # still pending on the object
    assert [r.value for r in store.counters()] == [1]
