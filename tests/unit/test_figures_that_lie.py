"""Figures that cannot be true, providers that break, clocks that jump: never a pass, never a crash.

The adversary's cases: a custom query that returns negative errors (once read
as "no errors" and promoted), figures near the float limit (once a
`ValueError: math domain error` that ended the rollout with exit 1 while the
record said "holding at 10%"), a provider raising what it should not, and a
wall clock stepped forward an hour mid-hold (once it shortened the hold and
promoted a slow canary).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.analysis import Result, evaluate
from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    Hooks,
    LocalRouterSettings,
    ScrapeProviderSettings,
    StoreSettings,
)
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.rollout.controller import RolloutController
from safeship.rollout.machine import Outcome, Phase, Reason
from safeship.store import open_store
from safeship.store.interface import Store
from safeship.testing import FakeRouter, SyntheticProvider

BUCKETS = ((0.05, 900.0), (0.1, 1000.0), (math.inf, 1000.0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield s
    s.close()


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
    settings = EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=CanaryStrategy(hold=60, min_hold=60, interval=10),
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )
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
    """A virtual clock whose wall time jumps an hour ahead once, at the `at`-th sleep."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.sleeps, self.at = 0, at

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.sleeps += 1
        if self.sleeps == self.at:
            self.step_wall(3600.0)


class TimedRouter(FakeRouter):
    """Remembers the monotonic time of every weight change."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.changed_at: list[tuple[int, float]] = []

    def set_weight(self, weight: int) -> None:
        super().set_weight(weight)
        self.changed_at.append((weight, self.clock.monotonic()))


def test_a_wall_clock_step_never_shortens_a_hold(store: Store) -> None:
    clock = SteppingClock(at=5)
    router = TimedRouter(clock)
    strategy = CanaryStrategy(hold=300, min_hold=300)
    settings = EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=strategy,
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )
    provider = SyntheticProvider(router, clock)
    controller = RolloutController(
        settings, store=store, router=router, provider=provider, clock=clock
    )

    state = controller.start("v2")

    assert state.outcome is Outcome.PROMOTED
    changes = router.changed_at
    assert [w for w, _ in changes] == [10, 50, 100]
    for (_, began), (_, ended) in itertools.pairwise(changes):
        assert ended - began >= strategy.hold
