"""Test doubles that users of the library need too: a router and a provider in memory.

`FakeRouter` behaves like a router that answers (or fails when told to);
`MemoryStore` keeps the history in memory;
`SyntheticProvider` produces the request counts a service at `rps` would
serve through that router, with given error ratios and latencies, in step with
a `VirtualClock` - so a rollout's hours run in milliseconds and deterministically.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from safeship.clock import Clock
from safeship.errors import (
    ProviderError,
    RolloutLockedError,
    RouterError,
    StateConflictError,
    StoreError,
)
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.routers.interface import Router, RouterHealth, Slot, Slots
from safeship.sample_service import LATENCY_BUCKETS
from safeship.store.interface import (
    CounterIncrement,
    CounterRecord,
    DashboardVersionRecord,
    DecisionRecord,
    DeploymentRecord,
    LockHolder,
    SlotAssignment,
    SmokeTestRecord,
    Store,
    canonical_labels,
)


class FakeRouter(Router):
    """Two slots in memory (blue stable at first); `fail_next` makes the next calls raise.

    `weight` is the canary slot's share; promotion makes that slot stable (and
    so the canary weight 0 again, on the other slot). `history` is the canary
    version's share after each change: a promotion of its slot is 100, of the
    stable one (a rollback) 0. `addresses` gives slots
    host:port addresses, as HAProxy, nginx and the local proxy have.
    """

    def __init__(self, weight: int = 0, addresses: dict[str, str] | None = None) -> None:
        self.weight = weight
        self.history: list[int] = []
        self.fail_next = 0
        self.names = ("blue", "green")
        self.stable = "blue"
        self.addresses = addresses or {}
        self.promotions: list[str] = []

    def set_weight(self, weight: int) -> None:
        self._maybe_fail()
        self.weight = weight
        self.history.append(weight)

    def get_weight(self) -> int:
        return self.weight

    def health(self) -> RouterHealth:
        return RouterHealth(True, "fake router")

    def slots(self) -> Slots:
        canary = self.names[1] if self.stable == self.names[0] else self.names[0]
        return Slots(
            Slot(self.stable, self.addresses.get(self.stable)),
            Slot(canary, self.addresses.get(canary)),
        )

    def promote(self, slot: str) -> None:
        self._maybe_fail()
        if slot not in self.names:
            raise RouterError(f"fake router has no slot {slot!r}")
        self.promotions.append(slot)
        # `history` is the canary version's share: all of it, or none of it.
        self.history.append(0 if slot == self.stable else 100)
        self.stable, self.weight = slot, 0  # all traffic on `slot`, the other one idle

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RouterError("fake router told to fail")


@dataclass(frozen=True)
class Traffic:
    """How one version behaves: its error ratio and a fixed latency."""

    error_ratio: float = 0.0
    latency: float = 0.02


class SyntheticProvider(MetricsProvider):
    """Expected counts of `rps` requests split by the router's weight, over any window.

    `outage` makes every measurement raise ProviderError while set. Figures are
    fresh every second, as a scraped endpoint's are.
    """

    fresh_every = 1.0

    def __init__(
        self,
        router: FakeRouter,
        clock: Clock,
        *,
        rps: float = 100.0,
        baseline: Traffic | None = None,
        canary: Traffic | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.rps = rps
        self.baseline = baseline or Traffic()
        self.canary = canary or Traffic()
        self.outage = False

    def measure(self, window: Window) -> Measurement:
        if self.outage:
            raise ProviderError("synthetic outage")
        share = self.router.weight / 100
        total = self.rps * window.seconds
        return Measurement(
            window=window,
            canary=_sample(total * share, self.canary),
            baseline=_sample(total * (1 - share), self.baseline),
            queries={"canary": "synthetic", "baseline": "synthetic"},
        )


def _sample(requests: float, traffic: Traffic) -> VersionSample:
    finite = [(bound, requests if traffic.latency <= bound else 0.0) for bound in LATENCY_BUCKETS]
    buckets = (*finite, (float("inf"), requests))
    return VersionSample(
        requests=requests, errors=requests * traffic.error_ratio, latency_buckets=buckets
    )


class MemoryStore(Store):
    """The history store in memory: for tests and simulations that need no file."""

    def __init__(self) -> None:
        self.deployments: dict[str, DeploymentRecord] = {}
        self.states: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.decision_log: dict[str, list[DecisionRecord]] = {}
        self.smokes: list[SmokeTestRecord] = []
        #: (service, environment, name, canonical labels) -> running total
        self.counter_values: dict[tuple[str, str, str, str], float] = {}
        self.dashboard_log: list[DashboardVersionRecord] = []
        self.slot_log: list[SlotAssignment] = []
        self.locks: dict[tuple[str, str], LockHolder] = {}

    def create_deployment(self, record: DeploymentRecord) -> None:
        if record.id in self.deployments:
            raise StoreError(f"deployment {record.id} exists")
        self.deployments[record.id] = record

    def update_deployment(
        self,
        deployment_id: str,
        *,
        outcome: str | None = None,
        reason: str | None = None,
        finished_at: float | None = None,
        max_weight: int | None = None,
    ) -> DeploymentRecord:
        record = self.deployments.get(deployment_id)
        if record is None:
            raise StoreError(f"no deployment {deployment_id}")
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "outcome": outcome,
                "reason": reason,
                "finished_at": finished_at,
                "max_weight": max_weight,
            }.items()
            if v is not None
        }
        record = dataclasses.replace(record, **changes)
        self.deployments[deployment_id] = record
        return record

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        return self.deployments.get(deployment_id)

    def list_deployments(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[DeploymentRecord]:
        found = [
            r
            for r in self.deployments.values()
            if (service is None or r.service == service)
            and (environment is None or r.environment == environment)
            and (since is None or r.started_at >= since)
        ]
        found.sort(key=lambda r: r.started_at, reverse=True)
        return found if limit is None else found[:limit]

    def unfinished_deployments(self, service: str, environment: str) -> list[DeploymentRecord]:
        found = [
            r
            for r in self.deployments.values()
            if (r.service, r.environment) == (service, environment) and r.outcome is None
        ]
        return sorted(found, key=lambda r: (r.started_at, r.id))

    @contextmanager
    def rollout_lock(
        self, service: str, environment: str, deployment_id: str, at: float
    ) -> Iterator[LockHolder | None]:
        holder = self.locks.get((service, environment))
        if holder is not None:
            raise RolloutLockedError(
                f"{service}/{environment} is being rolled out by rollout {holder.deployment_id}"
            )
        self.locks[(service, environment)] = LockHolder(deployment_id, "this process", at)
        try:
            yield None
        finally:
            del self.locks[(service, environment)]

    def save_state(
        self, deployment_id: str, at: float, state: dict[str, Any], *, after: int | None = None
    ) -> int:
        history = self.states.setdefault(deployment_id, [])
        if after is not None and after != len(history):
            raise StateConflictError(
                f"deployment {deployment_id!r} was changed by another process "
                f"(state {len(history)}, expected {after})"
            )
        history.append((at, state))
        return len(history)

    def latest_state(self, deployment_id: str) -> tuple[int, dict[str, Any]] | None:
        history = self.states.get(deployment_id)
        return (len(history), history[-1][1]) if history else None

    def state_history(self, deployment_id: str) -> list[tuple[float, dict[str, Any]]]:
        return list(self.states.get(deployment_id, []))

    def add_decision(self, record: DecisionRecord) -> DecisionRecord:
        log = self.decision_log.setdefault(record.deployment_id, [])
        stored = dataclasses.replace(record, seq=len(log) + 1)
        log.append(stored)
        return stored

    def decisions(self, deployment_id: str) -> list[DecisionRecord]:
        return list(self.decision_log.get(deployment_id, []))

    def add_smoke_test(self, record: SmokeTestRecord) -> None:
        self.smokes.append(record)

    def smoke_tests(
        self,
        *,
        deployment_id: str | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> list[SmokeTestRecord]:
        return [
            s
            for s in self.smokes
            if (deployment_id is None or s.deployment_id == deployment_id)
            and (service is None or s.service == service)
            and (environment is None or s.environment == environment)
        ]

    def add_to_counters(self, increments: Sequence[CounterIncrement]) -> None:
        updated = dict(self.counter_values)  # applied all at once, like a transaction
        for increment in increments:
            key = (
                increment.service,
                increment.environment,
                increment.name,
                canonical_labels(increment.labels),
            )
            updated[key] = updated.get(key, 0.0) + increment.value
        self.counter_values = updated

    def counters(self, *, service: str | None = None) -> list[CounterRecord]:
        return [
            CounterRecord(key[0], key[1], key[2], json.loads(key[3]), value)
            for key, value in sorted(self.counter_values.items())
            if service is None or key[0] == service
        ]

    def add_dashboard_version(self, record: DashboardVersionRecord) -> None:
        self.dashboard_log.append(record)

    def dashboard_versions(self, deployment_id: str) -> list[DashboardVersionRecord]:
        return [r for r in self.dashboard_log if r.deployment_id == deployment_id]

    def record_slots(self, record: SlotAssignment) -> None:
        self.slot_log.append(record)

    def slot_history(
        self, service: str, environment: str, *, limit: int | None = None
    ) -> list[SlotAssignment]:
        found = [
            r
            for r in reversed(self.slot_log)
            if (r.service, r.environment) == (service, environment)
        ]
        return found if limit is None else found[:limit]

    def close(self) -> None:
        pass


def serves_everything(admin_url: str, url: str) -> bool:
    """Whether the local proxy at `admin_url` sends all traffic to the process at `url`:
    its slot is the stable one, at canary weight 0 (what a promotion leaves)."""
    from safeship.routers.local import LocalRouter

    router = LocalRouter(admin_url)
    try:
        slots = router.slots()
        return router.get_weight() == 0 and slots.stable.address == urlsplit(url).netloc
    finally:
        router.close()
