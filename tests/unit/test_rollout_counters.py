"""The rollout controller makes the analysis counts durable as it saves the rollout's state."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    Hooks,
    LocalRouterSettings,
    ScrapeProviderSettings,
    StoreSettings,
)
from safeship.errors import StoreError
from safeship.metrics import DeploymentMetrics
from safeship.rollout.controller import RolloutController
from safeship.rollout.machine import Outcome
from safeship.store.interface import CounterIncrement
from safeship.testing import FakeRouter, MemoryStore, SyntheticProvider


class Store(MemoryStore):
    """Records the state saves and counter writes in order; can refuse the counters."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.refuse_counters = False

    def save_state(
        self, deployment_id: str, at: float, state: dict[str, object], *, after: int | None = None
    ) -> int:
        self.writes.append("state")
        return super().save_state(deployment_id, at, state, after=after)

    def add_to_counters(self, increments: Sequence[CounterIncrement]) -> None:
        self.writes.append("counters")
        if self.refuse_counters:
            raise StoreError("history store: adding to counters failed: database is locked")
        super().add_to_counters(increments)


def controller(store: Store) -> tuple[RolloutController, CollectorRegistry]:
    clock = VirtualClock()
    router = FakeRouter()
    settings = EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=CanaryStrategy(),
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )
    registry = CollectorRegistry()
    metrics = DeploymentMetrics(registry, store, service="checkout", clock=clock)
    rollout = RolloutController(
        settings,
        store=store,
        router=router,
        provider=SyntheticProvider(router, clock),
        clock=clock,
        metrics=metrics,
    )
    return rollout, registry


def analysis_passes(store: MemoryStore, check: str = "error_rate") -> float:
    return sum(
        r.value
        for r in store.counters()
        if r.name == "canary_analysis_total" and r.labels == {"check": check, "result": "pass"}
    )


def test_analysis_counts_are_flushed_whenever_the_state_is_saved() -> None:
    store = Store()
    rollout, registry = controller(store)
    state = rollout.start("v2")
    assert state.outcome is Outcome.PROMOTED
    assert analysis_passes(store) > 0
    # Durable without any push or explicit flush: the last state save flushed them all.
    assert rollout.metrics._pending.increments() == []
    # Each flush right after a state save (none when nothing was pending).
    flushes = [i for i, write in enumerate(store.writes) if write == "counters"]
    assert flushes
    assert all(store.writes[i - 1] == "state" for i in flushes)
    exported = registry.get_sample_value(
        "canary_analysis_total",
        {
            "service": "checkout",
            "environment": "production",
            "check": "error_rate",
            "result": "pass",
        },
    )
    assert exported is not None
    assert exported > 0


def test_a_failing_flush_warns_and_the_rollout_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    store.refuse_counters = True
    rollout, registry = controller(store)
    with caplog.at_level(logging.WARNING, logger="safeship.rollout"):
        state = rollout.start("v2")
    assert state.outcome is Outcome.PROMOTED
    assert store.deployments[state.deployment_id].outcome == "promoted"
    assert store.counters() == []
    assert "counts not saved to the history store" in caplog.text
    assert "database is locked" in caplog.text
    # The counts were kept in memory (and exported) and reach the store once it works.
    labels = {"service": "checkout", "environment": "production", "check": "error_rate"}
    pending = registry.get_sample_value("canary_analysis_total", {**labels, "result": "pass"})
    assert pending is not None
    assert pending > 0
    store.refuse_counters = False
    rollout.metrics.flush()
    assert analysis_passes(store) == pending
