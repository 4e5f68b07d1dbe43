"""Prometheus metrics about deployments, smoke tests and canary analysis.

Metric names, label names and histogram buckets are part of safeship's public
contract: users' dashboards and alert rules are written against them, so they are
fixed module constants here and must not change. Every metric carries a
`service` label so one Prometheus (or one Pushgateway) can hold many services.

Why the deployment metrics are read from the history store
----------------------------------------------------------
safeship often runs as a short-lived CI job: one process per rollout that pushes
its metrics to a Pushgateway and exits. An ordinary in-process `Counter` would
start at 0 in every run and the Pushgateway would hold "1" forever, so
`increase(deployment_total[7d])` would be meaningless. Instead the deployment and
smoke-test figures are *derived from the history store* every time they are
collected (`StoreCollector`): `deployment_total` is the number of finished
deployments the store knows, the duration histogram is built from their
`started_at`/`finished_at`, and so on. Each push therefore carries the true
running totals, which only grow as history grows, and `rate()`/`increase()`
work across processes, restarts and machines. A long-running `safeship` serving
`/metrics` gets the same numbers, and so does any other process reading the
same store.

Two consequences follow and are enforced here: a finished deployment's outcome
is final (changing `promoted` into `rolled_back` later would make a counter go
down, which Prometheus reads as a reset), and pruning old rows from the store
lowers the totals in the same way.

Counters that have no history row to derive them from - Prometheus query counts
and timings (`prometheus_query_total`, `prometheus_query_duration_seconds`) and
canary-analysis check results (`canary_analysis_total`) - are running totals
too: they are counted in memory and added to the store's `counters` table by
`DeploymentMetrics.flush()` (the rollout controller flushes whenever it saves the
rollout's state, and every push flushes first), one transaction per flush. The
collector exports the stored totals plus the increments not flushed yet, so an
in-process scrape is never behind. The only in-process metric left is the
current canary weight, a gauge.

Nothing here touches `prometheus_client.REGISTRY`: every metric is registered
on the `CollectorRegistry` the caller passes (or a fresh one).

The plan's short forms
----------------------
The module-level functions also take the forms of safeship's original plan, for
a script that only wants its deployments counted: `initialize_metrics()` opens
the default store (`.safeship/history.db` under the working directory) for the
service `default`, `track_deployment(env)` makes up the deployment id,
`track_smoke_test(env)` and `record_rollback(env, reason)` mean the deployment
whose `track_deployment` block they run in, and `record_prometheus_query` takes
`success` as a bool. The longer forms name what the short ones leave implicit
(store, service, deployment id, version, result string) and stay as they were.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import overload
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from safeship import config
from safeship.clock import Clock, SystemClock
from safeship.errors import StoreError
from safeship.ids import new_deployment_id
from safeship.metrics.collector import StoreCollector
from safeship.metrics.names import (
    _SECONDS_PER_HOUR,
    ANALYSIS_RESULTS,
    CANARY_ANALYSIS_TOTAL,
    CANARY_TRAFFIC_PERCENTAGE,
    DEPLOYMENT_DURATION_BUCKETS,
    DEPLOYMENT_DURATION_SECONDS,
    DEPLOYMENT_FREQUENCY,
    DEPLOYMENT_ROLLBACK_TOTAL,
    DEPLOYMENT_STATUSES,
    DEPLOYMENT_TOTAL,
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
    SMOKE_TEST_RESULTS,
    SMOKE_TEST_TOTAL,
    _is_finished,
)
from safeship.metrics.push import push_metrics
from safeship.redact import shown
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord, SmokeTestRecord, Store

__all__ = [
    "ANALYSIS_RESULTS",
    "CANARY_ANALYSIS_TOTAL",
    "CANARY_TRAFFIC_PERCENTAGE",
    "DEFAULT_SERVICE",
    "DEPLOYMENT_DURATION_BUCKETS",
    "DEPLOYMENT_DURATION_SECONDS",
    "DEPLOYMENT_FREQUENCY",
    "DEPLOYMENT_ROLLBACK_TOTAL",
    "DEPLOYMENT_STATUSES",
    "DEPLOYMENT_TOTAL",
    "OUTCOME_STATUS",
    "PROMETHEUS_QUERY_DURATION_BUCKETS",
    "PROMETHEUS_QUERY_DURATION_SECONDS",
    "PROMETHEUS_QUERY_RESULTS",
    "PROMETHEUS_QUERY_TOTAL",
    "ROLLBACK_REASONS",
    "ROLLOUT_IN_PROGRESS",
    "ROLLOUT_STARTED_TIMESTAMP_SECONDS",
    "SMOKE_TEST_DURATION_BUCKETS",
    "SMOKE_TEST_DURATION_SECONDS",
    "SMOKE_TEST_RESULTS",
    "SMOKE_TEST_TOTAL",
    "DeploymentMetrics",
    "StoreCollector",
    "deployment_frequency",
    "deployment_rollback_rate",
    "deployment_success_rate",
    "initialize_metrics",
    "push_metrics",
    "record_analysis",
    "record_prometheus_query",
    "record_rollback",
    "server_address",
    "shutdown_metrics",
    "track_deployment",
    "track_smoke_test",
    "update_canary_traffic",
]

logger = logging.getLogger("safeship.metrics")

#: The `service` of what `initialize_metrics()` records when given no store and no service.
DEFAULT_SERVICE = "default"
#: `version` of a deployment tracked without one (the plan's `track_deployment(env)`).
_UNKNOWN_VERSION = "unknown"
#: `name` of a smoke test tracked without one (the plan's `track_smoke_test(env)`).
_SMOKE_TEST_NAME = "smoke_test"
#: Lets a script written against the plan, which never names a port, serve elsewhere.
_PORT_VARIABLE = "SAFESHIP_METRICS_PORT"


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"invalid {what} {value!r}; allowed: {', '.join(allowed)}")


def _rollback_arguments(
    args: tuple[str, ...], deployment_id: str | None, reason: str | None
) -> tuple[str | None, str]:
    """`(deployment_id, reason)` of a `record_rollback` call, in either of its forms.

    The plan's form is `(environment, reason)`; the older `(environment,
    deployment_id, reason)` is kept for its callers. The number of positional
    arguments tells them apart, never what the strings look like (a deployment
    id may be any string, `manual` included).
    """
    rest = list(args)
    if reason is None and rest:
        reason = rest.pop()
    if deployment_id is None and rest:
        deployment_id = rest.pop()
    if rest or reason is None:
        raise TypeError(
            "record_rollback takes (environment, reason, *, deployment_id=None) "
            "or (environment, deployment_id, reason)"
        )
    return deployment_id, reason


class DeploymentMetrics:
    """safeship's metrics on one registry: the store collector plus the canary-weight gauge.

    The deployment and smoke-test metrics are cumulative totals read from `store`
    at collection time (see the module docstring for why); the methods that
    "record" them therefore write history records to the store. The rollout
    controller writes its own records, so `track_deployment`/`track_smoke_test`/
    `record_rollback` are for library users who do not use the controller. Inside
    a `track_deployment` block, `track_smoke_test` and `record_rollback` may leave
    out the deployment: they mean the innermost one tracked in their environment.
    `record_prometheus_query`/`record_analysis` count in memory until `flush()`
    adds the counts to the store's counters (collections include them meanwhile).

    `service` restricts the exported history to one service and is the default
    `service` label of the live metrics; with it None, all services in the store
    are exported and the service of a live metric comes from the call or the
    deployment record.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        store: Store,
        service: str | None = None,
        clock: Clock | None = None,
        frequency_window: float = 86400,
    ) -> None:
        self.registry = registry
        self.store = store
        self.service = service
        self.clock: Clock = clock or SystemClock()
        self.frequency_window = frequency_window
        self.collector = StoreCollector(store, service, self.clock, frequency_window)
        self._pending = self.collector.pending
        registry.register(self.collector)

        self._canary_traffic = Gauge(
            CANARY_TRAFFIC_PERCENTAGE,
            "Percentage of traffic currently routed to the canary.",
            ("service", "environment", "deployment_id"),
            registry=registry,
        )
        # One canary_traffic_percentage series per (service, environment): the
        # previous deployment's series is dropped when a new one reports traffic.
        self._traffic_ids: dict[tuple[str, str], str] = {}
        # The deployments whose `track_deployment` block is running, oldest first.
        self._tracking: list[DeploymentRecord] = []
        self._lock = threading.Lock()

    # --- helpers ------------------------------------------------------------------

    def _service_for(self, service: str | None, deployment_id: str | None = None) -> str:
        """The `service` of a call: explicit, else the deployment's, else the instance's."""
        if service is not None:
            return service
        if deployment_id is not None:
            record = self.store.get_deployment(deployment_id)
            if record is not None:
                return record.service
        if self.service is not None:
            return self.service
        raise ValueError("no service: pass service=... or create DeploymentMetrics(service=...)")

    def _tracked_id(self, environment: str, what: str) -> str:
        """The innermost deployment being tracked in `environment`, for a call naming none."""
        with self._lock:
            for record in reversed(self._tracking):
                if record.environment == environment:
                    return record.id
        raise ValueError(
            f"{what}: no deployment of environment {environment!r} is being tracked here "
            f"(no `with track_deployment({environment!r})` block is running); "
            "pass deployment_id=..."
        )

    def _finished_in(self, environment: str | None, window: float | None) -> list[DeploymentRecord]:
        if window is not None and window <= 0:
            raise ValueError("window must be positive")
        records = self.store.list_deployments(service=self.service, environment=environment)
        since = None if window is None else self.clock.now() - window
        return [
            r
            for r in records
            if _is_finished(r)
            and (since is None or (r.finished_at is not None and r.finished_at >= since))
        ]

    # --- store-backed recording -----------------------------------------------------

    @contextmanager
    def track_deployment(
        self,
        environment: str,
        deployment_id: str | None = None,
        version: str | None = None,
        *,
        service: str | None = None,
        commit_sha: str | None = None,
        commit_time: float | None = None,
    ) -> Iterator[DeploymentRecord]:
        """Record a deployment done by the `with` body (for users without the controller).

        On enter a `DeploymentRecord` is created in the store (it yields it); on a
        normal exit the outcome becomes `promoted`, on an exception `failed` (and
        the exception propagates). An outcome already set inside the block, e.g.
        by `record_rollback`, is kept. Without `deployment_id` a new one is made
        (`safeship.ids`, sortable by start); without `version` it is `unknown`.
        """
        now = self.clock.now()
        record = DeploymentRecord(
            id=new_deployment_id(now) if deployment_id is None else deployment_id,
            service=self._service_for(service),
            environment=environment,
            version=_UNKNOWN_VERSION if version is None else version,
            started_at=now,
            commit_sha=commit_sha,
            commit_time=commit_time,
        )
        self.store.create_deployment(record)
        with self._lock:
            self._tracking.append(record)
        try:
            yield record
        except BaseException:
            self._finish(record.id, "failed")
            raise
        finally:
            with self._lock:
                self._tracking.remove(record)
        self._finish(record.id, "promoted")

    def _finish(self, deployment_id: str, outcome: str) -> None:
        current = self.store.get_deployment(deployment_id)
        if current is not None and _is_finished(current):
            if current.finished_at is None:
                self.store.update_deployment(deployment_id, finished_at=self.clock.now())
            return
        self.store.update_deployment(deployment_id, outcome=outcome, finished_at=self.clock.now())

    @contextmanager
    def track_smoke_test(
        self,
        environment: str,
        deployment_id: str | None = None,
        name: str | None = None,
        *,
        service: str | None = None,
    ) -> Iterator[None]:
        """Time the `with` body as a smoke test and store a `SmokeTestRecord`.

        It passes when the body returns and fails when it raises (the exception
        propagates; its text is kept as the record's detail). Without
        `deployment_id` it belongs to the deployment being tracked in
        `environment` (a smoke test is always of some deployment: the store refuses
        one of a deployment it does not know); without `name` it is `smoke_test`.
        """
        if deployment_id is None:
            deployment_id = self._tracked_id(environment, "track_smoke_test")
        resolved = self._service_for(service, deployment_id)
        started = self.clock.now()
        passed = False
        detail = ""
        try:
            yield
            passed = True
        except BaseException as exc:
            detail = shown(f"{type(exc).__name__}: {exc}", limit=500)
            raise
        finally:
            self.store.add_smoke_test(
                SmokeTestRecord(
                    deployment_id=deployment_id,
                    service=resolved,
                    environment=environment,
                    name=_SMOKE_TEST_NAME if name is None else name,
                    passed=passed,
                    duration=max(0.0, self.clock.now() - started),
                    at=started,
                    detail=detail,
                )
            )

    @overload
    def record_rollback(
        self, environment: str, reason: str, *, deployment_id: str | None = None
    ) -> None: ...

    @overload
    def record_rollback(self, environment: str, deployment_id: str, reason: str) -> None: ...

    def record_rollback(
        self,
        environment: str,
        *args: str,
        deployment_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Mark a deployment `rolled_back` with `reason` (and finished now if not yet).

        `record_rollback(env, reason)` rolls back the deployment being tracked in
        `env`, `record_rollback(env, reason, deployment_id=...)` a named one, and
        so does the older `record_rollback(env, deployment_id, reason)`. Its
        canary's `canary_traffic_percentage` then reads 0: a rolled-back canary
        gets no traffic. A deployment that already finished otherwise is
        refused: its outcome feeds cumulative counters, and changing it would
        make one of them decrease.
        """
        deployment_id, reason = _rollback_arguments(args, deployment_id, reason)
        _check(reason, ROLLBACK_REASONS, "rollback reason")
        if deployment_id is None:
            deployment_id = self._tracked_id(environment, "record_rollback")
        record = self.store.get_deployment(deployment_id)
        if record is None:
            raise ValueError(f"unknown deployment {deployment_id!r}")
        if record.environment != environment:
            raise ValueError(
                f"deployment {deployment_id!r} is in environment {record.environment!r}, "
                f"not {environment!r}"
            )
        if not (record.outcome == "rolled_back" and record.reason == reason):
            if _is_finished(record):
                raise ValueError(
                    f"deployment {deployment_id!r} already finished as {record.outcome!r}; "
                    "finished outcomes are final"
                )
            self.store.update_deployment(
                deployment_id,
                outcome="rolled_back",
                reason=reason,
                finished_at=self.clock.now() if record.finished_at is None else record.finished_at,
            )
        with self._lock:
            if self._traffic_ids.get((record.service, environment)) == deployment_id:
                self._canary_traffic.labels(record.service, environment, deployment_id).set(0)

    # --- live gauge and store counters --------------------------------------------------

    def update_canary_traffic(
        self,
        environment: str,
        deployment_id: str,
        weight: float,
        *,
        service: str | None = None,
    ) -> None:
        """Set the canary's traffic percentage (0-100) for a deployment."""
        if not 0 <= weight <= 100:
            raise ValueError(f"weight must be between 0 and 100, got {weight}")
        resolved = self._service_for(service, deployment_id)
        with self._lock:
            previous = self._traffic_ids.get((resolved, environment))
            if previous is not None and previous != deployment_id:
                with suppress(KeyError):
                    self._canary_traffic.remove(resolved, environment, previous)
            self._traffic_ids[(resolved, environment)] = deployment_id
            self._canary_traffic.labels(resolved, environment, deployment_id).set(weight)

    def record_prometheus_query(
        self, workflow: str, result: str | bool, duration: float, *, service: str | None = None
    ) -> None:
        """Count one Prometheus query (`success|failed|timeout`) and observe its duration.

        `result` may also be the plan's `success` bool: True is `success`, False
        `failed` (a timeout is told apart only by the string). Pending until
        `flush()`; a collection includes it meanwhile.
        """
        if isinstance(result, bool):
            result = "success" if result else "failed"
        _check(result, PROMETHEUS_QUERY_RESULTS, "prometheus query result")
        if not math.isfinite(duration) or duration < 0:
            # A NaN would poison the stored sum for good.
            raise ValueError(f"duration must be a finite number >= 0, got {duration}")
        self._pending.record_prometheus_query(
            self._service_for(service), workflow, result, duration
        )

    def record_analysis(
        self, environment: str, check: str, result: str, *, service: str | None = None
    ) -> None:
        """Count one canary-analysis check result (`pass|fail|inconclusive|error`).

        Pending until `flush()`; a collection includes it meanwhile.
        """
        _check(result, ANALYSIS_RESULTS, "analysis result")
        self._pending.record_analysis(self._service_for(service), environment, check, result)

    def flush(self) -> None:
        """Add the pending query and analysis counts to the store, in one transaction.

        A no-op when nothing is pending. On `StoreError` the counts stay pending
        (and keep being exported) for the next flush.
        """
        self._pending.flush(self.store)

    # --- derived figures (from the store) -------------------------------------------------

    def deployment_success_rate(
        self, environment: str | None = None, window: float | None = None
    ) -> float | None:
        """Share of finished deployments that were promoted, in the last `window` seconds.

        `window=None` means all history. None when nothing finished: no data is
        neither 0% nor 100%.
        """
        finished = self._finished_in(environment, window)
        if not finished:
            return None
        return sum(1 for r in finished if r.outcome == "promoted") / len(finished)

    def deployment_rollback_rate(
        self, environment: str | None = None, window: float | None = None
    ) -> float | None:
        """Share of finished deployments rolled back or aborted; None without data."""
        finished = self._finished_in(environment, window)
        if not finished:
            return None
        rolled = sum(1 for r in finished if OUTCOME_STATUS[r.outcome or ""] == "rolled_back")
        return rolled / len(finished)

    def deployment_frequency(
        self, environment: str | None = None, window: float | None = None
    ) -> float:
        """Successful deployments per hour over `window` seconds (default: frequency_window)."""
        span = self.frequency_window if window is None else window
        finished = self._finished_in(environment, span)
        promoted = sum(1 for r in finished if r.outcome == "promoted")
        return promoted / (span / _SECONDS_PER_HOUR)


# --- module-level convenience API --------------------------------------------------------

_current: DeploymentMetrics | None = None
_server: tuple[WSGIServer, threading.Thread] | None = None
# The store `initialize_metrics` opened itself (none given), closed by `shutdown_metrics`.
_own_store: Store | None = None
_module_lock = threading.Lock()


def _require_current() -> DeploymentMetrics:
    if _current is None:
        raise RuntimeError("call initialize_metrics() first")
    return _current


def _default_port() -> int:
    """The plan's port 8001, unless SAFESHIP_METRICS_PORT names another (0: any free one).

    A script written against the plan never names a port; the variable lets it
    run where 8001 is taken, e.g. on a shared CI machine. Set but empty is unset.
    """
    value = os.environ.get(_PORT_VARIABLE, "").strip()
    if not value:
        return config.DEFAULT_METRICS_PORT
    if not value.isdecimal() or int(value) > 65535:
        raise ValueError(f"{_PORT_VARIABLE}={value!r} is not a port number (0-65535)")
    return int(value)


def initialize_metrics(
    store: Store | None = None,
    service: str | None = None,
    registry: CollectorRegistry | None = None,
    address: str = "127.0.0.1",
    port: int | None = None,
    serve: bool = True,
    clock: Clock | None = None,
) -> DeploymentMetrics:
    """Create the current `DeploymentMetrics` used by the module-level functions.

    Without `store` the default store is opened, `sqlite:///.safeship/history.db`
    relative to the working directory (created if needed; logged at INFO, and
    the returned object's `.store.url` names the file); it is closed by
    `shutdown_metrics()`. The plan's `initialize_metrics()` is that form, and
    since it names no service either, its service is `DEFAULT_SERVICE`. With a
    store passed, `service=None` keeps its meaning: every service in the store
    is exported, and each recording call must name its service.

    A fresh `CollectorRegistry` is used unless one is passed. With `serve=True`
    `/metrics` is served over HTTP on `address:port` (port 0 picks a free one;
    see `server_address()`; without `port`, $SAFESHIP_METRICS_PORT or 8001); a
    port that cannot be bound is logged as a warning and the metrics still work
    (e.g. for `push_metrics`). A server started by an earlier call is stopped
    first, and a store it opened is closed.
    """
    global _current, _server, _own_store
    shutdown_metrics()
    # Read first: a bad SAFESHIP_METRICS_PORT fails before anything is opened.
    listen_port = (_default_port() if port is None else port) if serve else None
    own_store: Store | None = None
    if store is None:
        store = own_store = open_store(config.DEFAULT_STORE_URL)
        logger.info("metrics history store: %s (in %s)", config.DEFAULT_STORE_URL, os.getcwd())
        if service is None:
            service = DEFAULT_SERVICE
    try:
        metrics = DeploymentMetrics(registry or CollectorRegistry(), store, service, clock)
    except BaseException:
        if own_store is not None:  # e.g. a registry that holds safeship's metrics already
            own_store.close()
        raise
    server: tuple[WSGIServer, threading.Thread] | None = None
    if listen_port is not None:
        try:
            server = start_http_server(listen_port, address, metrics.registry)
        except OSError as exc:
            logger.warning(
                "metrics server not started: cannot listen on %s:%s (%s)",
                address,
                listen_port,
                exc,
            )
    with _module_lock:
        _current = metrics
        _server = server
        _own_store = own_store
    return metrics


def server_address() -> tuple[str, int] | None:
    """`(host, port)` the metrics server listens on, or None when not serving."""
    server = _server
    if server is None:
        return None
    host, port = server[0].server_address[:2]
    return str(host), int(port)


def shutdown_metrics() -> None:
    """Stop the metrics HTTP server (if any), flush and forget the current metrics.

    A flush that fails is logged as a warning; the counts stay pending on the
    `DeploymentMetrics` object, which `initialize_metrics` returned.
    """
    global _current, _server, _own_store
    with _module_lock:
        server, _server, current, _current = _server, None, _current, None
        own_store, _own_store = _own_store, None
    if server is not None:
        httpd, thread = server
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    if current is not None:
        try:
            current.flush()
        except StoreError as exc:
            logger.warning("query and analysis counts not saved to the history store: %s", exc)
    if own_store is not None:
        own_store.close()


def track_deployment(
    environment: str,
    deployment_id: str | None = None,
    version: str | None = None,
    *,
    service: str | None = None,
    commit_sha: str | None = None,
    commit_time: float | None = None,
) -> AbstractContextManager[DeploymentRecord]:
    """`DeploymentMetrics.track_deployment` on the current metrics."""
    return _require_current().track_deployment(
        environment,
        deployment_id,
        version,
        service=service,
        commit_sha=commit_sha,
        commit_time=commit_time,
    )


def track_smoke_test(
    environment: str,
    deployment_id: str | None = None,
    name: str | None = None,
    *,
    service: str | None = None,
) -> AbstractContextManager[None]:
    """`DeploymentMetrics.track_smoke_test` on the current metrics."""
    return _require_current().track_smoke_test(environment, deployment_id, name, service=service)


@overload
def record_rollback(environment: str, reason: str, *, deployment_id: str | None = None) -> None: ...


@overload
def record_rollback(environment: str, deployment_id: str, reason: str) -> None: ...


def record_rollback(
    environment: str,
    *args: str,
    deployment_id: str | None = None,
    reason: str | None = None,
) -> None:
    """`DeploymentMetrics.record_rollback` on the current metrics."""
    deployment_id, reason = _rollback_arguments(args, deployment_id, reason)
    _require_current().record_rollback(environment, reason, deployment_id=deployment_id)


def update_canary_traffic(
    environment: str, deployment_id: str, weight: float, *, service: str | None = None
) -> None:
    """`DeploymentMetrics.update_canary_traffic` on the current metrics."""
    _require_current().update_canary_traffic(environment, deployment_id, weight, service=service)


def record_prometheus_query(
    workflow: str, result: str | bool, duration: float, *, service: str | None = None
) -> None:
    """`DeploymentMetrics.record_prometheus_query` on the current metrics."""
    _require_current().record_prometheus_query(workflow, result, duration, service=service)


def record_analysis(
    environment: str, check: str, result: str, *, service: str | None = None
) -> None:
    """`DeploymentMetrics.record_analysis` on the current metrics."""
    _require_current().record_analysis(environment, check, result, service=service)


def deployment_success_rate(
    environment: str | None = None, window: float | None = None
) -> float | None:
    """`DeploymentMetrics.deployment_success_rate` on the current metrics."""
    return _require_current().deployment_success_rate(environment, window)


def deployment_rollback_rate(
    environment: str | None = None, window: float | None = None
) -> float | None:
    """`DeploymentMetrics.deployment_rollback_rate` on the current metrics."""
    return _require_current().deployment_rollback_rate(environment, window)


def deployment_frequency(environment: str | None = None, window: float | None = None) -> float:
    """`DeploymentMetrics.deployment_frequency` on the current metrics."""
    return _require_current().deployment_frequency(environment, window)
