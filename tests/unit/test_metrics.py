"""Tests of safeship.metrics: store-derived totals, live metrics, push and serving."""

from __future__ import annotations

import logging
import socket
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from safeship import metrics as m
from safeship.clock import VirtualClock
from safeship.config import DEFAULT_STORE_URL
from safeship.store.interface import DeploymentRecord, SmokeTestRecord, Store
from safeship.store.sql import SqlStore
from safeship.testing import MemoryStore

SERVICE = "checkout"
ENV = "production"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(autouse=True)
def _global_registry_untouched() -> Iterator[None]:
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    yield
    m.shutdown_metrics()
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before


def make(
    store: Store, clock: VirtualClock, service: str | None = SERVICE
) -> tuple[CollectorRegistry, m.DeploymentMetrics]:
    registry = CollectorRegistry()
    return registry, m.DeploymentMetrics(registry, store, service=service, clock=clock)


def add_deployment(
    store: MemoryStore,
    deployment_id: str,
    *,
    started: float,
    duration: float | None,
    outcome: str | None,
    reason: str | None = None,
    service: str = SERVICE,
    environment: str = ENV,
) -> None:
    store.create_deployment(
        DeploymentRecord(
            id=deployment_id,
            service=service,
            environment=environment,
            version="v1",
            started_at=started,
            finished_at=None if duration is None else started + duration,
            outcome=outcome,
            reason=reason,
        )
    )


def total(registry: CollectorRegistry, status: str, env: str = ENV) -> float | None:
    return registry.get_sample_value(
        "deployment_total", {"service": SERVICE, "environment": env, "status": status}
    )


# --- names, buckets, exposition ---------------------------------------------------------


def _isort_style(name: str) -> tuple[int, str]:
    """ruff's RUF022 order for `__all__`: CONSTANTS, then Classes, then everything else."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_exactly_the_public_names_sorted() -> None:
    # httpx-style: every public name safeship.metrics defines or re-exports is in
    # `__all__`, and nothing else. Submodules and names imported for its own use
    # (their `__module__` is elsewhere) are not part of the public API.
    public = [
        name
        for name, value in vars(m).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", m.__name__).split(".")[:2] == ["safeship", "metrics"]
    ]
    assert m.__all__ == sorted(public, key=_isort_style)


def test_counter_sample_names_are_exactly_the_documented_ones(
    store: MemoryStore, clock: VirtualClock
) -> None:
    registry, dm = make(store, clock)
    add_deployment(store, "d1", started=clock.now(), duration=100, outcome="promoted")
    store.add_smoke_test(SmokeTestRecord("d1", SERVICE, ENV, "health", True, 3.0, clock.now()))
    dm.record_prometheus_query("analysis", "success", 0.2)
    dm.record_analysis(ENV, "error_rate", "pass")
    dm.update_canary_traffic(ENV, "d1", 10)

    names = {s.name for family in registry.collect() for s in family.samples}
    for counter in (
        "deployment_total",
        "deployment_rollback_total",
        "smoke_test_total",
        "prometheus_query_total",
        "canary_analysis_total",
    ):
        assert counter in names
    for other in (
        "deployment_duration_seconds_bucket",
        "deployment_frequency",
        "smoke_test_duration_seconds_bucket",
        "prometheus_query_duration_seconds_bucket",
        "canary_traffic_percentage",
        "rollout_in_progress",
    ):
        assert other in names
    text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE deployment_total counter" in text
    assert "# TYPE deployment_duration_seconds histogram" in text
    assert 'deployment_total{environment="production",service="checkout",status="success"} 1.0' in (
        text
    )


def _bucket_bounds(registry: CollectorRegistry, name: str) -> list[str]:
    for family in registry.collect():
        if family.name == name:
            return [s.labels["le"] for s in family.samples if s.name == name + "_bucket"]
    raise AssertionError(f"no family {name}")


def test_histogram_buckets_are_fixed(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock)
    add_deployment(store, "d1", started=clock.now(), duration=100, outcome="promoted")
    store.add_smoke_test(SmokeTestRecord("d1", SERVICE, ENV, "health", True, 3.0, clock.now()))
    dm.record_prometheus_query("analysis", "success", 0.2)

    assert _bucket_bounds(registry, "deployment_duration_seconds") == [
        "60.0",
        "120.0",
        "300.0",
        "600.0",
        "1800.0",
        "3600.0",
        "+Inf",
    ]
    assert _bucket_bounds(registry, "smoke_test_duration_seconds") == [
        "10.0",
        "30.0",
        "60.0",
        "120.0",
        "300.0",
        "+Inf",
    ]
    assert _bucket_bounds(registry, "prometheus_query_duration_seconds") == [
        "0.1",
        "0.5",
        "1.0",
        "2.0",
        "5.0",
        "10.0",
        "+Inf",
    ]


# --- store-derived totals ------------------------------------------------------------------


def test_outcomes_map_to_statuses_and_unfinished_are_not_counted(
    store: MemoryStore, clock: VirtualClock
) -> None:
    registry, _ = make(store, clock)
    now = clock.now()
    add_deployment(store, "a", started=now - 5000, duration=100, outcome="promoted")
    add_deployment(
        store, "b", started=now - 4000, duration=700, outcome="rolled_back", reason="high_latency"
    )
    add_deployment(store, "c", started=now - 3000, duration=50, outcome="aborted", reason="manual")
    add_deployment(store, "d", started=now - 2000, duration=30, outcome="failed")
    add_deployment(store, "e", started=now - 1000, duration=None, outcome="paused")
    add_deployment(store, "f", started=now - 500, duration=None, outcome=None)

    assert total(registry, "success") == 1
    assert total(registry, "rolled_back") == 2
    assert total(registry, "failed") == 1

    def rollbacks(reason: str) -> float | None:
        return registry.get_sample_value(
            "deployment_rollback_total", {"service": SERVICE, "environment": ENV, "reason": reason}
        )

    assert rollbacks("high_latency") == 1
    assert rollbacks("manual") == 1
    assert rollbacks("smoke_test_failed") == 0  # zero series exist so increase() sees the first

    labels = {"service": SERVICE, "environment": ENV}
    assert registry.get_sample_value("deployment_duration_seconds_count", labels) == 4
    assert registry.get_sample_value("deployment_duration_seconds_sum", labels) == 880
    assert (
        registry.get_sample_value("deployment_duration_seconds_bucket", {**labels, "le": "60.0"})
        == 2
    )
    assert (
        registry.get_sample_value("deployment_duration_seconds_bucket", {**labels, "le": "600.0"})
        == 3
    )
    assert registry.get_sample_value("rollout_in_progress", labels) == 1
    assert registry.get_sample_value("rollout_started_timestamp_seconds", labels) == now - 1000


def test_cumulative_totals_survive_a_new_process(store: MemoryStore, clock: VirtualClock) -> None:
    """The CI case: each run is a new process, yet the exported totals keep growing."""
    registry1, dm1 = make(store, clock)
    with dm1.track_deployment(ENV, "run-1", "v1"):
        clock.advance(90)
    assert total(registry1, "success") == 1

    registry2, dm2 = make(store, clock)  # a fresh process over the same history

    def failing_run() -> None:
        with dm2.track_deployment(ENV, "run-2", "v2"):
            clock.advance(30)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_run()
    with dm2.track_deployment(ENV, "run-3", "v3"):
        clock.advance(200)

    assert total(registry2, "success") == 2
    assert total(registry2, "failed") == 1
    labels = {"service": SERVICE, "environment": ENV}
    assert registry2.get_sample_value("deployment_duration_seconds_count", labels) == 3
    assert registry2.get_sample_value("deployment_duration_seconds_sum", labels) == 320
    assert registry2.get_sample_value("rollout_in_progress", labels) == 0
    assert registry2.get_sample_value("rollout_started_timestamp_seconds", labels) is None
    assert store.deployments["run-2"].outcome == "failed"
    assert store.deployments["run-3"].finished_at == clock.now()


def test_rollout_in_progress_while_tracking(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock)
    labels = {"service": SERVICE, "environment": ENV}
    started = clock.now()
    with dm.track_deployment(ENV, "d1", "v1") as record:
        assert record.id == "d1"
        clock.advance(10)
        assert registry.get_sample_value("rollout_in_progress", labels) == 1
        assert registry.get_sample_value("rollout_started_timestamp_seconds", labels) == started
        assert total(registry, "success") == 0
    assert registry.get_sample_value("rollout_in_progress", labels) == 0


def test_service_filter_exports_only_that_service(store: MemoryStore, clock: VirtualClock) -> None:
    add_deployment(store, "a", started=clock.now(), duration=10, outcome="promoted")
    add_deployment(
        store, "b", started=clock.now(), duration=10, outcome="promoted", service="billing"
    )
    registry, _ = make(store, clock)
    assert total(registry, "success") == 1
    assert (
        registry.get_sample_value(
            "deployment_total", {"service": "billing", "environment": ENV, "status": "success"}
        )
        is None
    )

    all_registry, _ = make(store, clock, service=None)
    assert total(all_registry, "success") == 1
    assert (
        all_registry.get_sample_value(
            "deployment_total", {"service": "billing", "environment": ENV, "status": "success"}
        )
        == 1
    )


def test_smoke_tests_are_stored_and_counted(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock)
    with dm.track_smoke_test(ENV, "d1", "health"):
        clock.advance(12)

    def failing_smoke_test() -> None:
        with dm.track_smoke_test(ENV, "d1", "checkout-flow"):
            clock.advance(40)
            raise AssertionError("HTTP 500")

    with pytest.raises(AssertionError, match="HTTP 500"):
        failing_smoke_test()

    labels = {"service": SERVICE, "environment": ENV}
    assert registry.get_sample_value("smoke_test_total", {**labels, "result": "passed"}) == 1
    assert registry.get_sample_value("smoke_test_total", {**labels, "result": "failed"}) == 1
    assert registry.get_sample_value("smoke_test_duration_seconds_sum", labels) == 52
    assert (
        registry.get_sample_value("smoke_test_duration_seconds_bucket", {**labels, "le": "30.0"})
        == 1
    )
    failed = store.smokes[1]
    assert not failed.passed
    assert "HTTP 500" in failed.detail
    # A new process over the same store still reports them.
    registry2, _ = make(store, clock)
    assert registry2.get_sample_value("smoke_test_total", {**labels, "result": "failed"}) == 1


def test_smoke_test_service_comes_from_the_deployment(
    store: MemoryStore, clock: VirtualClock
) -> None:
    add_deployment(store, "d1", started=clock.now(), duration=None, outcome=None, service="billing")
    _, dm = make(store, clock, service=None)
    with dm.track_smoke_test(ENV, "d1", "health"):
        pass
    assert store.smokes[0].service == "billing"


def test_deployment_frequency_gauge(store: MemoryStore, clock: VirtualClock) -> None:
    now = clock.now()
    for i in range(6):  # promoted within the last 24h
        add_deployment(
            store, f"p{i}", started=now - 3600 * (i + 1), duration=60, outcome="promoted"
        )
    add_deployment(store, "old", started=now - 90000, duration=60, outcome="promoted")
    add_deployment(store, "bad", started=now - 3600, duration=60, outcome="failed")
    registry, dm = make(store, clock)
    labels = {"service": SERVICE, "environment": ENV}
    assert registry.get_sample_value("deployment_frequency", labels) == pytest.approx(6 / 24)
    assert dm.deployment_frequency() == pytest.approx(6 / 24)
    # finished 59 and 119 minutes ago -> 2 in 2.5h
    assert dm.deployment_frequency(window=2.5 * 3600) == pytest.approx(2 / 2.5)
    assert dm.deployment_frequency(environment="staging") == 0


# --- derived rates ------------------------------------------------------------------------


def test_rates_are_none_without_finished_deployments(
    store: MemoryStore, clock: VirtualClock
) -> None:
    _, dm = make(store, clock)
    assert dm.deployment_success_rate() is None
    assert dm.deployment_rollback_rate() is None
    assert dm.deployment_frequency() == 0
    add_deployment(store, "running", started=clock.now(), duration=None, outcome=None)
    add_deployment(store, "paused", started=clock.now(), duration=None, outcome="paused")
    assert dm.deployment_success_rate() is None
    assert dm.deployment_rollback_rate() is None


def test_rates_over_window_and_environment(store: MemoryStore, clock: VirtualClock) -> None:
    now = clock.now()
    add_deployment(store, "a", started=now - 100_000, duration=60, outcome="rolled_back")
    add_deployment(store, "b", started=now - 3000, duration=60, outcome="promoted")
    add_deployment(store, "c", started=now - 2000, duration=60, outcome="promoted")
    add_deployment(store, "d", started=now - 1000, duration=60, outcome="failed")
    add_deployment(
        store, "e", started=now - 1000, duration=60, outcome="aborted", environment="staging"
    )
    _, dm = make(store, clock)

    assert dm.deployment_success_rate() == pytest.approx(2 / 5)
    assert dm.deployment_success_rate(window=86400) == pytest.approx(2 / 4)
    assert dm.deployment_success_rate(environment=ENV, window=86400) == pytest.approx(2 / 3)
    assert dm.deployment_rollback_rate(environment=ENV) == pytest.approx(1 / 4)
    assert dm.deployment_rollback_rate(environment="staging") == 1
    assert dm.deployment_success_rate(environment="dev") is None


# --- rollback ---------------------------------------------------------------------------------


def test_record_rollback_sets_outcome_and_reason(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock)
    with dm.track_deployment(ENV, "d1", "v1"):
        clock.advance(45)
        dm.record_rollback(ENV, "d1", "high_error_rate")
        clock.advance(5)
    record = store.deployments["d1"]
    assert record.outcome == "rolled_back"  # not overwritten by the clean exit
    assert record.reason == "high_error_rate"
    assert record.duration == 45
    assert total(registry, "rolled_back") == 1
    assert total(registry, "success") == 0
    assert (
        registry.get_sample_value(
            "deployment_rollback_total",
            {"service": SERVICE, "environment": ENV, "reason": "high_error_rate"},
        )
        == 1
    )
    dm.record_rollback(ENV, "d1", "high_error_rate")  # idempotent


def test_record_rollback_validates(store: MemoryStore, clock: VirtualClock) -> None:
    _, dm = make(store, clock)
    add_deployment(store, "d1", started=clock.now(), duration=None, outcome=None)
    with pytest.raises(ValueError, match="smoke_test_failed, high_error_rate") as info:
        dm.record_rollback(ENV, "d1", "cosmic_rays")
    assert "manual" in str(info.value)
    with pytest.raises(ValueError, match="unknown deployment"):
        dm.record_rollback(ENV, "nope", "manual")
    with pytest.raises(ValueError, match="environment"):
        dm.record_rollback("staging", "d1", "manual")
    add_deployment(store, "done", started=clock.now(), duration=10, outcome="promoted")
    with pytest.raises(ValueError, match="final"):
        dm.record_rollback(ENV, "done", "manual")
    assert store.deployments["done"].outcome == "promoted"


# --- live metrics ------------------------------------------------------------------------------


def test_canary_traffic_keeps_one_series_per_environment(
    store: MemoryStore, clock: VirtualClock
) -> None:
    registry, dm = make(store, clock)
    dm.update_canary_traffic(ENV, "d1", 5)
    dm.update_canary_traffic(ENV, "d1", 25)
    labels = {"service": SERVICE, "environment": ENV, "deployment_id": "d1"}
    assert registry.get_sample_value("canary_traffic_percentage", labels) == 25
    dm.update_canary_traffic(ENV, "d2", 10)
    assert registry.get_sample_value("canary_traffic_percentage", labels) is None
    assert (
        registry.get_sample_value("canary_traffic_percentage", {**labels, "deployment_id": "d2"})
        == 10
    )
    with pytest.raises(ValueError, match="between 0 and 100"):
        dm.update_canary_traffic(ENV, "d2", 101)


def exposition(registry: CollectorRegistry) -> str:
    """What a scrape of /metrics would read."""
    return prometheus_client.generate_latest(registry).decode()


def test_a_rollback_sets_the_canary_traffic_to_zero(
    store: MemoryStore, clock: VirtualClock
) -> None:
    registry, dm = make(store, clock)
    with dm.track_deployment(ENV, "d1", "v1"):
        dm.update_canary_traffic(ENV, "d1", 10)
        dm.record_rollback(ENV, "d1", "high_latency")
    assert (
        'canary_traffic_percentage{deployment_id="d1",environment="production",'
        'service="checkout"} 0.0' in exposition(registry)
    )
    dm.update_canary_traffic(ENV, "d2", 5)  # the next deployment's canary
    dm.record_rollback(ENV, "d1", "high_latency")  # again: d1's series is gone, d2's stays
    assert (
        'canary_traffic_percentage{deployment_id="d2",environment="production",'
        'service="checkout"} 5.0' in exposition(registry)
    )


def test_prometheus_query_and_analysis(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock)
    dm.record_prometheus_query("analysis", "success", 0.3)
    dm.record_prometheus_query("analysis", "timeout", 10.0)
    labels = {"service": SERVICE, "workflow": "analysis"}
    assert registry.get_sample_value("prometheus_query_total", {**labels, "result": "timeout"}) == 1
    assert registry.get_sample_value("prometheus_query_duration_seconds_count", labels) == 2
    assert (
        registry.get_sample_value(
            "prometheus_query_duration_seconds_bucket", {**labels, "le": "0.5"}
        )
        == 1
    )
    with pytest.raises(ValueError, match="success, failed, timeout"):
        dm.record_prometheus_query("analysis", "ok", 0.1)

    dm.record_analysis(ENV, "error_rate", "fail")
    assert (
        registry.get_sample_value(
            "canary_analysis_total",
            {"service": SERVICE, "environment": ENV, "check": "error_rate", "result": "fail"},
        )
        == 1
    )
    with pytest.raises(ValueError, match="inconclusive"):
        dm.record_analysis(ENV, "error_rate", "maybe")


def test_live_metrics_need_a_service(store: MemoryStore, clock: VirtualClock) -> None:
    registry, dm = make(store, clock, service=None)
    with pytest.raises(ValueError, match="no service"):
        dm.record_analysis(ENV, "latency", "pass")
    dm.record_analysis(ENV, "latency", "pass", service="billing")
    assert (
        registry.get_sample_value(
            "canary_analysis_total",
            {"service": "billing", "environment": ENV, "check": "latency", "result": "pass"},
        )
        == 1
    )


# --- pushgateway ------------------------------------------------------------------------------


def capturing_handler(
    calls: list[dict[str, Any]],
) -> Callable[..., Callable[[], None]]:
    def handler(
        url: str, method: str, timeout: float | None, headers: list[Any], data: bytes
    ) -> Callable[[], None]:
        calls.append({"url": url, "method": method, "data": data.decode()})
        return lambda: None

    return handler


def test_push_uses_service_and_environment_grouping_key(
    store: MemoryStore, clock: VirtualClock
) -> None:
    _, dm = make(store, clock)
    with dm.track_deployment(ENV, "deploy-123", "v1"):
        clock.advance(60)
    with dm.track_deployment("staging", "deploy-124", "v1"):
        clock.advance(60)
    dm.record_prometheus_query("analysis", "success", 0.1)
    calls: list[dict[str, Any]] = []

    m.push_metrics("http://pushgw:9091", dm, ENV, handler=capturing_handler(calls))

    assert len(calls) == 1
    call = calls[0]
    assert call["method"] == "PUT"
    assert (
        call["url"]
        == "http://pushgw:9091/metrics/job/safeship/environment/production/service/checkout"
    )
    assert "deploy-123" not in call["url"]
    body = call["data"]
    assert (
        'deployment_total{environment="production",service="checkout",status="success"} 1.0' in body
    )
    assert 'environment="staging"' not in body  # other groups' series would be relabelled
    assert "prometheus_query_total" in body


def test_push_needs_a_service(store: MemoryStore, clock: VirtualClock) -> None:
    _, dm = make(store, clock, service=None)
    calls: list[dict[str, Any]] = []
    with pytest.raises(ValueError, match="service"):
        m.push_metrics("pushgw:9091", dm, ENV, handler=capturing_handler(calls))
    m.push_metrics("pushgw:9091", dm, ENV, handler=capturing_handler(calls), service="billing")
    assert calls[0]["url"].endswith("/environment/production/service/billing")


# --- module-level API and HTTP serving ----------------------------------------------------------


def test_module_functions_need_initialize(store: MemoryStore) -> None:
    m.shutdown_metrics()
    with pytest.raises(RuntimeError, match=r"call initialize_metrics\(\) first"):
        m.deployment_success_rate()
    with pytest.raises(RuntimeError, match=r"initialize_metrics"):
        m.track_deployment(ENV, "d1", "v1")


def test_module_functions_use_the_initialized_metrics(
    store: MemoryStore, clock: VirtualClock
) -> None:
    registry = CollectorRegistry()
    dm = m.initialize_metrics(store, service=SERVICE, registry=registry, serve=False, clock=clock)
    assert dm.registry is registry
    assert m.server_address() is None
    with m.track_deployment(ENV, "d1", "v1"):
        with m.track_smoke_test(ENV, "d1", "health"):
            clock.advance(5)
        m.update_canary_traffic(ENV, "d1", 50)
        m.record_prometheus_query("analysis", "success", 0.1)
        m.record_analysis(ENV, "error_rate", "pass")
        m.record_rollback(ENV, "d1", "smoke_test_failed")
    assert m.deployment_success_rate() == 0
    assert m.deployment_rollback_rate() == 1
    assert m.deployment_frequency() == 0
    assert total(registry, "rolled_back") == 1


def test_initialize_metrics_serves_http(store: MemoryStore, clock: VirtualClock) -> None:
    m.initialize_metrics(store, service=SERVICE, port=0, clock=clock)
    address = m.server_address()
    assert address is not None
    with m.track_deployment(ENV, "d1", "v1"):
        clock.advance(61)
    url = f"http://127.0.0.1:{address[1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert 'deployment_total{environment="production",service="checkout",status="success"} 1.0' in (
        body
    )
    m.shutdown_metrics()
    assert m.server_address() is None
    with pytest.raises(urllib.error.URLError), urllib.request.urlopen(url, timeout=2):
        pass


def test_initialize_metrics_on_busy_port_warns(
    store: MemoryStore, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="safeship.metrics"):
            dm = m.initialize_metrics(store, service=SERVICE, port=port, clock=clock)
    assert m.server_address() is None
    assert any(
        r.levelno == logging.WARNING
        and r.name == "safeship.metrics"
        and str(port) in r.getMessage()
        for r in caplog.records
    )
    # The metrics still work without the server.
    with m.track_deployment(ENV, "d1", "v1"):
        pass
    assert dm.deployment_success_rate() == 1


# --- the original plan's API: no store, no ids, bool query results ------------------------------


def plan_metrics(store: Store, clock: VirtualClock) -> m.DeploymentMetrics:
    """`initialize_metrics()` as the plan calls it, on a memory store and a virtual clock.

    With a store passed, `initialize_metrics` exports every service unless told one;
    the plan's no-argument form is the service `default`.
    """
    return m.initialize_metrics(store, service=m.DEFAULT_SERVICE, serve=False, clock=clock)


def test_initialize_metrics_without_arguments_opens_the_default_store_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFESHIP_METRICS_PORT", "0")  # 8001 may be taken on this machine
    with caplog.at_level(logging.INFO, logger="safeship.metrics"):
        dm = m.initialize_metrics()
    assert (tmp_path / ".safeship" / "history.db").is_file()
    assert any(DEFAULT_STORE_URL in r.getMessage() for r in caplog.records)
    assert isinstance(dm.store, SqlStore)
    assert dm.store.url == f"sqlite:///{Path.cwd() / '.safeship' / 'history.db'}"
    assert dm.service == m.DEFAULT_SERVICE == "default"
    address = m.server_address()
    assert address is not None
    assert address[0] == "127.0.0.1"
    with m.track_deployment("staging"):
        pass
    m.shutdown_metrics()

    # Another process in the same directory reads the same history: the total is cumulative.
    dm = m.initialize_metrics(serve=False)
    with m.track_deployment("staging"):
        pass
    assert (
        'deployment_total{environment="staging",service="default",status="success"} 2.0'
        in exposition(dm.registry)
    )


def test_the_default_store_is_closed_with_the_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    closed: list[MemoryStore] = []

    class Recording(MemoryStore):
        def close(self) -> None:
            closed.append(self)

    def fake_open(url: str) -> MemoryStore:
        opened.append(url)
        return Recording()

    monkeypatch.setattr(m, "open_store", fake_open)
    dm = m.initialize_metrics(serve=False)
    m.shutdown_metrics()
    assert opened == [DEFAULT_STORE_URL]
    assert closed == [dm.store]

    registry = CollectorRegistry()
    m.initialize_metrics(MemoryStore(), service="a", registry=registry, serve=False)
    with pytest.raises(ValueError, match="Duplicated"):  # safeship's metrics are there already
        m.initialize_metrics(registry=registry, serve=False)
    assert len(closed) == 2  # the store it had opened for them


def test_initialize_metrics_serves_on_8001_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    calls: list[tuple[int, str]] = []

    def fake_start(port: int, addr: str, registry: CollectorRegistry) -> Any:
        calls.append((port, addr))
        raise OSError("not really")

    monkeypatch.setattr(m, "start_http_server", fake_start)
    monkeypatch.delenv("SAFESHIP_METRICS_PORT", raising=False)
    m.initialize_metrics(store)
    monkeypatch.setenv("SAFESHIP_METRICS_PORT", "")  # set but empty, as CI often leaves it
    m.initialize_metrics(store)
    monkeypatch.setenv("SAFESHIP_METRICS_PORT", "9464")
    m.initialize_metrics(store)
    m.initialize_metrics(store, port=9100)  # an explicit port wins over the variable
    assert calls == [
        (8001, "127.0.0.1"),
        (8001, "127.0.0.1"),
        (9464, "127.0.0.1"),
        (9100, "127.0.0.1"),
    ]


@pytest.mark.parametrize("value", ["http", "-1", "65536", "80.5"])
def test_a_bad_metrics_port_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, store: MemoryStore, value: str
) -> None:
    monkeypatch.setenv("SAFESHIP_METRICS_PORT", value)
    with pytest.raises(ValueError, match="SAFESHIP_METRICS_PORT"):
        m.initialize_metrics(store)


def test_track_deployment_with_only_an_environment(store: MemoryStore, clock: VirtualClock) -> None:
    dm = plan_metrics(store, clock)
    with m.track_deployment("staging") as first:
        clock.advance(1)
    with m.track_deployment("staging") as second:
        clock.advance(1)
    assert len(first.id) == 26  # a safeship.ids deployment id
    assert first.id < second.id  # sortable by creation time
    assert first.version == "unknown"
    assert store.deployments[first.id].service == "default"
    assert (
        'deployment_total{environment="staging",service="default",status="success"} 2.0'
        in exposition(dm.registry)
    )


def test_track_smoke_test_with_only_an_environment_joins_the_tracked_deployment(
    store: MemoryStore, clock: VirtualClock
) -> None:
    dm = plan_metrics(store, clock)
    with m.track_deployment("staging") as deployment:
        with m.track_smoke_test("staging"):
            clock.advance(3)
        with m.track_smoke_test("staging", name="checkout-flow"):
            clock.advance(4)
    assert [(s.deployment_id, s.name) for s in store.smokes] == [
        (deployment.id, "smoke_test"),
        (deployment.id, "checkout-flow"),
    ]
    assert (
        'smoke_test_total{environment="staging",result="passed",service="default"} 2.0'
        in exposition(dm.registry)
    )


def test_track_smoke_test_without_a_deployment_to_join_is_refused(
    store: MemoryStore, clock: VirtualClock
) -> None:
    plan_metrics(store, clock)
    with m.track_deployment("staging"), pytest.raises(ValueError, match="production"):
        # The deployment being tracked is in another environment.
        m.track_smoke_test("production").__enter__()
    assert store.smokes == []


def test_record_rollback_with_environment_and_reason(
    store: MemoryStore, clock: VirtualClock
) -> None:
    dm = plan_metrics(store, clock)
    with m.track_deployment("production") as kept:
        m.update_canary_traffic("production", kept.id, 100)
    with m.track_deployment("staging") as deployment:
        m.update_canary_traffic("staging", deployment.id, 10)
        clock.advance(30)
        m.record_rollback("staging", "high_error_rate")
    record = store.deployments[deployment.id]
    assert (record.outcome, record.reason, record.duration) == (
        "rolled_back",
        "high_error_rate",
        30,
    )
    text = exposition(dm.registry)
    assert (
        'deployment_total{environment="staging",service="default",status="rolled_back"} 1.0' in text
    )
    assert (
        'canary_traffic_percentage{deployment_id="' + deployment.id + '",environment="staging",'
        'service="default"} 0.0' in text
    )
    assert (  # another environment's canary is untouched
        'canary_traffic_percentage{deployment_id="' + kept.id + '",environment="production",'
        'service="default"} 100.0' in text
    )


def test_record_rollback_names_a_deployment_by_keyword(
    store: MemoryStore, clock: VirtualClock
) -> None:
    add_deployment(store, "d1", started=clock.now(), duration=None, outcome=None)
    add_deployment(store, "d2", started=clock.now(), duration=None, outcome=None)
    _, dm = make(store, clock)
    dm.record_rollback(ENV, "manual", deployment_id="d1")
    dm.record_rollback(ENV, "d2", reason="crash_loop")  # today's form, reason by keyword
    assert store.deployments["d1"].reason == "manual"
    assert store.deployments["d2"].reason == "crash_loop"
    with pytest.raises(TypeError, match="record_rollback"):
        dm.record_rollback(ENV, "d1", "manual", deployment_id="d2")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="record_rollback"):
        dm.record_rollback(ENV)  # type: ignore[call-overload]


def test_record_rollback_outside_a_tracked_deployment_needs_its_id(
    store: MemoryStore, clock: VirtualClock
) -> None:
    plan_metrics(store, clock)
    with m.track_deployment("staging"):
        pass
    with pytest.raises(ValueError, match="deployment_id"):
        m.record_rollback("staging", "manual")


def test_record_prometheus_query_takes_success_as_a_bool(
    store: MemoryStore, clock: VirtualClock
) -> None:
    dm = plan_metrics(store, clock)
    m.record_prometheus_query("canary_analysis", True, 0.2)
    m.record_prometheus_query("canary_analysis", False, 1.5)
    m.record_prometheus_query("canary_analysis", "timeout", 10.0)  # today's result strings
    text = exposition(dm.registry)
    for result in ("success", "failed", "timeout"):
        assert (
            f'prometheus_query_total{{result="{result}",service="default",'
            f'workflow="canary_analysis"}} 1.0' in text
        )


def test_the_derived_figures_without_arguments(store: MemoryStore, clock: VirtualClock) -> None:
    plan_metrics(store, clock)
    with m.track_deployment("staging"):
        pass
    with m.track_deployment("staging"):
        m.record_rollback("staging", "smoke_test_failed")
    assert m.deployment_success_rate() == 0.5
    assert m.deployment_rollback_rate() == 0.5
    assert m.deployment_frequency() == pytest.approx(1 / 24)
