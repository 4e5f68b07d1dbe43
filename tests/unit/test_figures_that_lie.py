"""Figures that cannot be true, providers that break, clocks that jump: never a pass, never a crash.

The adversary's cases: a custom query that returns negative errors (once read
as "no errors" and promoted), figures near the float limit (once a
`ValueError: math domain error` that ended the rollout with exit 1 while the
record said "holding at 10%"), a provider raising what it should not, and a
wall clock stepped forward an hour mid-hold (once it shortened the hold and
promoted a slow canary).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.analysis import Memory, Result, evaluate
from safeship.clock import VirtualClock
from safeship.config import (
    Action,
    CanaryStrategy,
    EnvironmentConfig,
    Hooks,
    Limits,
    LocalRouterSettings,
    ScrapeProviderSettings,
    StoreSettings,
)
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.rollout.controller import RolloutController
from safeship.rollout.machine import Outcome, Phase, Reason, RolloutState
from safeship.store import open_store
from safeship.store.interface import Store
from safeship.testing import FakeRouter, SyntheticProvider, Traffic

BUCKETS = ((0.05, 900.0), (0.1, 1000.0), (math.inf, 1000.0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield s
    s.close()


def _settings(strategy: CanaryStrategy) -> EnvironmentConfig:
    """An environment where only the analysis settings matter."""
    return EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=strategy,
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )


def _measurement(canary: VersionSample, queries: dict[str, str] | None = None) -> Measurement:
    return Measurement(
        Window(0.0, 60.0),
        canary,
        VersionSample(9000.0, 45.0, BUCKETS),
        queries=queries or {},
    )


@pytest.mark.parametrize(
    ("errors", "said"),
    [
        (-5.0, "canary errors = -5.0 is negative"),
        (math.nan, "canary errors = nan is not a number"),
        (math.inf, "canary errors = inf is infinite"),
        (1e307, "canary errors = 1e+307 is beyond any real traffic"),
        (5000.0, "canary errors (5000) exceed its requests (1000)"),
    ],
)
def test_impossible_figures_are_inconclusive_naming_value_and_query(
    errors: float, said: str
) -> None:
    query = "sum(increase(my_errors_total[60s]))"
    m = _measurement(VersionSample(1000.0, errors, BUCKETS), {"canary.errors": query})

    verdict = evaluate(m, CanaryStrategy())

    assert verdict.result is Result.INCONCLUSIVE
    assert said in verdict.reason
    assert query in verdict.reason


def test_huge_request_counts_do_not_crash_the_arithmetic() -> None:
    huge = VersionSample(1e307, 1e306, ((0.1, 1e307), (math.inf, 1e307)))
    verdict = evaluate(_measurement(huge), CanaryStrategy())
    assert verdict.result is Result.INCONCLUSIVE
    assert "beyond any real traffic" in verdict.reason


class Lying(MetricsProvider):
    """Returns the same impossible canary figures at every look."""

    fresh_every = 1.0

    def __init__(self, canary: VersionSample) -> None:
        self.canary = canary

    def measure(self, window: Window) -> Measurement:
        return Measurement(window, self.canary, VersionSample(9000.0, 45.0, BUCKETS))


class Broken(MetricsProvider):
    """Raises what no provider should (a bug, not a ProviderError)."""

    def measure(self, window: Window) -> Measurement:
        raise KeyError("le")


def _controller(store: Store, provider: MetricsProvider, clock: VirtualClock) -> RolloutController:
    settings = _settings(CanaryStrategy(hold=60, min_hold=60, interval=10))
    return RolloutController(
        settings, store=store, router=FakeRouter(), provider=provider, clock=clock
    )


@pytest.mark.parametrize("errors", [-5.0, 1e307, math.nan])
def test_a_rollout_on_lying_figures_pauses_at_the_hold_end_and_the_record_says_so(
    store: Store, errors: float
) -> None:
    controller = _controller(store, Lying(VersionSample(1000.0, errors, BUCKETS)), VirtualClock())

    state = controller.start("v2")

    assert (state.phase, state.reason, state.weight) == (Phase.PAUSED, Reason.NO_DATA, 10)
    stored = controller.load(state.deployment_id)
    assert (stored.phase, stored.weight) == (Phase.PAUSED, 10)
    assert "figures refused" in stored.detail


def test_a_provider_that_raises_a_bug_is_an_error_verdict_then_a_recorded_rollback(
    store: Store,
) -> None:
    controller = _controller(store, Broken(), VirtualClock())

    state = controller.start("v2")

    assert (state.outcome, state.reason, state.weight) == (
        Outcome.ROLLED_BACK,
        Reason.PROVIDER_ERROR,
        0,
    )
    assert "the provider failed: KeyError" in state.detail
    record = store.get_deployment(state.deployment_id)
    assert record is not None
    assert (record.outcome, record.reason) == ("rolled_back", "provider_error")


class SteppingClock(VirtualClock):
    """A virtual clock whose wall time jumps (an hour ahead) once, at the `at`-th sleep."""

    def __init__(self, at: int, by: float = 3600.0) -> None:
        super().__init__()
        self.sleeps, self.at, self.by = 0, at, by

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.sleeps += 1
        if self.sleeps == self.at:
            self.step_wall(self.by)


class TimedRouter(FakeRouter):
    """Remembers the monotonic time of every weight change."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.changed_at: list[tuple[int, float]] = []

    def set_weight(self, weight: int) -> None:
        super().set_weight(weight)
        self.changed_at.append((weight, self.clock.monotonic()))

    def promote(self, slot: str) -> None:
        super().promote(slot)
        self.changed_at.append((self.history[-1], self.clock.monotonic()))


STEADY = CanaryStrategy(hold=300, min_hold=300)  # no early advance: every hold is whole


def _rollout_under(clock: SteppingClock, store: Store) -> tuple[RolloutState, TimedRouter]:
    """A healthy rollout with `STEADY` holds, timed on `clock` (its wall time jumps)."""
    router = TimedRouter(clock)
    provider = SyntheticProvider(router, clock)
    controller = RolloutController(
        _settings(STEADY), store=store, router=router, provider=provider, clock=clock
    )
    return controller.start("v2"), router


def test_a_wall_clock_step_never_shortens_a_hold(store: Store) -> None:
    state, router = _rollout_under(SteppingClock(at=5), store)

    assert state.outcome is Outcome.PROMOTED
    changes = router.changed_at
    assert [w for w, _ in changes] == [10, 50, 100]
    for (_, began), (_, ended) in itertools.pairwise(changes):
        assert ended - began >= STEADY.hold


class Reshaped(MetricsProvider):
    """Synthetic traffic with a hook that rewrites each measurement (a broken exporter)."""

    fresh_every = 1.0

    def __init__(self, inner: MetricsProvider, change: Any) -> None:
        self.inner, self.change, self.calls = inner, change, 0

    def window_opened(self, at: float) -> None:
        self.inner.window_opened(at)

    def measure(self, window: Window) -> Measurement:
        self.calls += 1
        m: Measurement = self.change(self.inner.measure(window), window, self.calls)
        return m


def _world(store: Store, change: Any, **traffic: Any) -> tuple[RolloutController, FakeRouter]:
    clock = VirtualClock()
    router = FakeRouter()
    inner = SyntheticProvider(router, clock, rps=1000, **traffic)
    settings = _settings(CanaryStrategy(hold=60, min_hold=60, interval=10))
    controller = RolloutController(
        settings, store=store, router=router, provider=Reshaped(inner, change), clock=clock
    )
    return controller, router


def test_a_canary_without_a_latency_histogram_is_never_promoted(store: Store) -> None:
    def drop_canary_histogram(m: Measurement, window: Window, calls: int) -> Measurement:
        return dataclasses.replace(m, canary=dataclasses.replace(m.canary, latency_buckets=()))

    controller, router = _world(
        store, drop_canary_histogram, canary=Traffic(latency=2.0), baseline=Traffic(latency=0.02)
    )
    state = controller.start("v2")

    assert (state.phase, state.reason, router.weight) == (Phase.PAUSED, Reason.NO_DATA, 10)
    assert "no latency observations for canary" in state.detail


def test_histograms_that_share_no_bound_are_inconclusive_not_a_pass(store: Store) -> None:
    def rebucket(m: Measurement, window: Window, calls: int) -> Measurement:
        bounds = tuple((le * 1.1, count) for le, count in m.canary.latency_buckets)
        return dataclasses.replace(m, canary=dataclasses.replace(m.canary, latency_buckets=bounds))

    controller, router = _world(
        store, rebucket, canary=Traffic(latency=2.0), baseline=Traffic(latency=0.02)
    )
    state = controller.start("v2")

    assert (state.phase, router.weight) == (Phase.PAUSED, 10)
    assert "share no bucket bound" in state.detail


def test_a_broken_histogram_does_not_blind_the_guard(store: Store) -> None:
    def break_histogram(m: Measurement, window: Window, calls: int) -> Measurement:
        broken = ((0.1, 10.0), (0.5, 2.0), (math.inf, m.canary.requests))
        return dataclasses.replace(m, canary=dataclasses.replace(m.canary, latency_buckets=broken))

    controller, router = _world(store, break_histogram, canary=Traffic(error_ratio=1.0))
    state = controller.start("v2")

    assert (state.outcome, state.reason, router.weight) == (
        Outcome.ROLLED_BACK,
        Reason.HIGH_ERROR_RATE,
        0,
    )
    assert state.updated_at - state.started_at <= 2


def test_a_paused_canary_is_still_watched_and_rolled_back_when_it_fails(store: Store) -> None:
    clock = VirtualClock()
    router = FakeRouter()
    # Slow from the start (the latency check fails and pauses); failing everything later.
    canary = Traffic(latency=0.3)
    inner = SyntheticProvider(router, clock, rps=1000, canary=canary)

    def breaks_later(m: Measurement, window: Window, calls: int) -> Measurement:
        if clock.monotonic() < 60:
            return m
        failing = dataclasses.replace(m.canary, errors=m.canary.requests)
        return dataclasses.replace(m, canary=failing)

    settings = _settings(
        CanaryStrategy(hold=300, limits=Limits(on_failure=Action.PAUSE), pause_timeout=3600)
    )
    controller = RolloutController(
        settings,
        store=store,
        router=router,
        provider=Reshaped(inner, breaks_later),
        clock=clock,
    )

    state = controller.start("v2")

    assert (state.outcome, state.reason, router.weight) == (
        Outcome.ROLLED_BACK,
        Reason.HIGH_ERROR_RATE,
        0,
    )
    assert clock.monotonic() < 70  # not at the pause timeout, an hour later
    decisions = [d.action for d in store.decisions(state.deployment_id)]
    assert "pause" in decisions


def test_a_wall_clock_stepped_back_never_stretches_a_hold(store: Store) -> None:
    clock = SteppingClock(at=5, by=-3600.0)
    state, _ = _rollout_under(clock, store)

    assert state.outcome is Outcome.PROMOTED
    assert clock.monotonic() < 2 * STEADY.hold + 60


def test_a_version_with_a_vanishing_share_of_traffic_does_not_break_the_arithmetic() -> None:
    m = Measurement(
        Window(0.0, 60.0),
        VersionSample(1e9, 5e8, ((0.1, 1e9), (math.inf, 1e9))),
        VersionSample(1e-9, 0.0, ((0.1, 1e-9), (math.inf, 1e-9))),
    )
    verdict = evaluate(m, CanaryStrategy())
    assert verdict.result in Result


def test_a_refused_look_at_the_warmups_end_still_judges_all_the_settled_traffic(
    store: Store,
) -> None:
    def glitch_at_warmup_end(m: Measurement, window: Window, calls: int) -> Measurement:
        if round(window.seconds) != 10:  # the look at exactly the end of the warm-up
            return m
        bad = dataclasses.replace(m.canary, errors=m.canary.requests * 2 + 10)
        return dataclasses.replace(m, canary=bad)

    controller, _ = _world(
        store, glitch_at_warmup_end, canary=Traffic(latency=0.03), baseline=Traffic(latency=0.03)
    )
    state = controller.start("v2")

    assert state.outcome is Outcome.PROMOTED
    stored = controller.load(state.deployment_id).analysis
    tally = Memory.from_storage(stored).latency["latency"].families[0].tally
    # Both steps' settled traffic (from one look after the refused one: 49 s of 60 s, at
    # 100 and 500 canary rps) is in the latency test, not a tick's worth per interval.
    assert tally.canary_requests >= 0.9 * (49 * 100 + 49 * 500)
