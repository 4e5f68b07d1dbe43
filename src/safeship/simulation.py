"""Rollouts in virtual time on synthetic traffic: what would these settings do to a bad canary?

`simulate` runs the real rollout controller (the same machine, analysis and
policy as a live rollout) on a `VirtualClock`, against a router that only
remembers weights and a provider that draws traffic at random: Poisson
request counts split by the weight in force, binomial errors, and latencies
from a log-normal distribution binned into Prometheus-style buckets. A trial
of a full 10/50/100 rollout takes milliseconds, so thousands of trials give
promote and rollback rates, time to decision, and the number of requests a
bad canary served (and failed) before it was stopped. Seeded, so a run can be
repeated exactly.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from safeship.rollout.machine import Outcome
from safeship.routers.interface import Router, RouterHealth, Slot, Slots
from safeship.sample_service import LATENCY_BUCKETS
from safeship.testing import MemoryStore


@dataclass(frozen=True)
class TrafficModel:
    """The service under test: load, error rates, latency (log-normal, median and spread).

    `canary_slow_share` of the canary's requests take `canary_slow_factor` times
    as long (a tail regression that a quantile limit may miss). With
    `canary_restart_every`, the canary's process restarts that often: for
    `restart_downtime` seconds the requests routed to it fail at the router,
    unseen by its own metrics, and its counters start again from zero, losing
    what it served since the provider last read them.
    """

    rps: float = 50.0
    baseline_error_rate: float = 0.005
    canary_error_rate: float = 0.005
    baseline_latency_median: float = 0.05
    latency_sigma: float = 0.5
    canary_latency_factor: float = 1.0
    canary_slow_share: float = 0.0
    canary_slow_factor: float = 1.0
    canary_restart_every: float | None = None
    restart_downtime: float = 1.0


class SimulatedRouter(Router):
    """Remembers which share of traffic the canary version had when, on the virtual clock.

    Its slots are "stable" and "canary"; a promotion of the canary slot gives the
    canary version all traffic, and makes that slot the stable one.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.changes: list[tuple[float, int]] = [(clock.now(), 0)]
        self._stable = "stable"

    def set_weight(self, weight: int) -> None:
        share = weight if self._stable == "stable" else 100 - weight
        self.changes.append((self.clock.now(), share))

    def get_weight(self) -> int:
        share = self.changes[-1][1]
        return share if self._stable == "stable" else 100 - share

    def health(self) -> RouterHealth:
        return RouterHealth(True, "simulated")

    def slots(self) -> Slots:
        other = "canary" if self._stable == "stable" else "stable"
        return Slots(Slot(self._stable), Slot(other))

    def promote(self, slot: str) -> None:
        self._stable = slot
        self.changes.append((self.clock.now(), 0 if slot == "stable" else 100))

    def weight_at(self, at: float) -> int:
        weight = self.changes[0][1]
        for when, value in self.changes:
            if when > at:
                break
            weight = value
        return weight


_COUNTS = 4  # canary requests, canary errors, baseline requests, baseline errors
_CELLS = len(LATENCY_BUCKETS) + 1


class SimulatedTraffic(MetricsProvider):
    """Random traffic through a `SimulatedRouter`, generated up to each look, one second at a time.

    Each second's split follows the weight in force during it, so the traffic
    a canary serves during warm-ups and after a rollback is counted too. Two
    views are kept as running totals at every point generated up to: what the
    versions' own metrics show (`measure`, the provider safeship reads) and
    what the router saw (`router_counts`, with the requests a restarting canary
    failed), besides the ground truth of what the canary served.
    """

    fresh_every = 1.0  # figures are generated per second

    def __init__(
        self, model: TrafficModel, router: SimulatedRouter, rng: np.random.Generator
    ) -> None:
        self.model = model
        self.router = router
        self.rng = rng
        self.generated_until = router.clock.now()
        self._started = self.generated_until
        self._times = [self.generated_until]
        # Running totals at each time in `_times`: metrics view (counts, canary cells,
        # baseline cells, canary resets) and router view (counts).
        self._metrics = [np.zeros(_COUNTS + 2 * _CELLS + 1)]
        self._routed = [np.zeros(_COUNTS)]
        self._canary_p = _mixture_probabilities(model)
        self._baseline_p = _bucket_probabilities(model.baseline_latency_median, model.latency_sigma)

    def window_opened(self, at: float) -> None:
        self._generate_until(at)

    def measure(self, window: Window) -> Measurement:
        self._generate_until(window.end)
        total = self._at(self._metrics, window.end) - self._at(self._metrics, window.start)
        counts = total[:_COUNTS]
        canary_cells = total[_COUNTS : _COUNTS + _CELLS]
        baseline_cells = total[_COUNTS + _CELLS : _COUNTS + 2 * _CELLS]
        return Measurement(
            window=window,
            canary=VersionSample(
                float(counts[0]),
                float(counts[1]),
                _cumulative(canary_cells),
                resets=round(float(total[-1])),
            ),
            baseline=VersionSample(float(counts[2]), float(counts[3]), _cumulative(baseline_cells)),
            queries={"canary": "simulated", "baseline": "simulated"},
        )

    def router_counts(self, since: float, until: float) -> np.ndarray:
        """What the router saw in [since, until]: canary and baseline requests and failures."""
        self._generate_until(until)
        difference: np.ndarray = self._at(self._routed, until) - self._at(self._routed, since)
        return difference

    def canary_served(self, until: float) -> tuple[float, float]:
        """Requests and failed requests the canary served up to `until` (ground truth)."""
        routed = self.router_counts(self._started, until)
        return float(routed[0]), float(routed[1])

    def _at(self, series: list[np.ndarray], at: float) -> np.ndarray:
        """The running total at the latest generated point at or before `at`."""
        index = bisect.bisect_right(self._times, at) - 1
        return series[max(index, 0)]

    def _generate_until(self, until: float) -> None:
        start = self.generated_until
        if until <= start:
            return
        m = self.model
        seconds = np.arange(math.floor(start), math.ceil(until))
        lo = np.maximum(seconds, start)
        hi = np.minimum(seconds + 1, until)
        span = hi - lo
        share = np.array([self.router.weight_at(float(t)) / 100 for t in lo])
        canary_n = self.rng.poisson(m.rps * span * share)
        baseline_n = self.rng.poisson(m.rps * span * (1 - share))
        canary_e = self.rng.binomial(canary_n, m.canary_error_rate)
        baseline_e = self.rng.binomial(baseline_n, m.baseline_error_rate)
        down, crashed = self._restarts(lo, hi)
        # While the canary is down its requests fail at the router, unseen by its metrics;
        # at a crash its counters restart, and what it served since the last read is lost.
        lost = down | np.logical_or.accumulate(crashed[::-1])[::-1] if crashed.any() else down
        seen = ~lost
        routed_failed = np.where(down, canary_n, canary_e)
        seen_n, seen_e = int(canary_n[seen].sum()), int(canary_e[seen].sum())
        total_b = int(baseline_n.sum())
        metrics = np.concatenate(
            [
                np.array([seen_n, seen_e, total_b, baseline_e.sum()], dtype=float),
                self.rng.multinomial(seen_n, self._canary_p).astype(float),
                self.rng.multinomial(total_b, self._baseline_p).astype(float),
                np.array([float(crashed.sum())]),
            ]
        )
        routed = np.array(
            [canary_n.sum(), routed_failed.sum(), total_b, baseline_e.sum()], dtype=float
        )
        self._times.append(until)
        self._metrics.append(self._metrics[-1] + metrics)
        self._routed.append(self._routed[-1] + routed)
        self.generated_until = until

    def _restarts(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per generated second: is the canary down, and does it crash in it."""
        every = self.model.canary_restart_every
        if every is None:
            none = np.zeros(len(lo), dtype=bool)
            return none, none.copy()
        since = lo - self._started
        phase = np.mod(since, every)
        crashed = (np.floor((hi - self._started) / every) > np.floor(since / every)) & (
            hi - self._started >= every
        )
        down = (since >= every) & (phase < self.model.restart_downtime)
        return down, crashed


def _mixture_probabilities(model: TrafficModel) -> np.ndarray:
    """The canary's bucket probabilities: its latency, with a slow share further out."""
    median = model.baseline_latency_median * model.canary_latency_factor
    usual = _bucket_probabilities(median, model.latency_sigma)
    if model.canary_slow_share <= 0:
        return usual
    slow = _bucket_probabilities(median * model.canary_slow_factor, model.latency_sigma)
    mixed: np.ndarray = (1 - model.canary_slow_share) * usual + model.canary_slow_share * slow
    return mixed


def _bucket_probabilities(median: float, sigma: float) -> np.ndarray:
    """P(latency in each bucket) for a log-normal latency; the last cell is (10 s, +Inf)."""
    normal = statistics.NormalDist(math.log(median), sigma)
    cdf = [normal.cdf(math.log(b)) for b in LATENCY_BUCKETS] + [1.0]
    probabilities: np.ndarray = np.clip(np.diff([0.0, *cdf]), 0, None)
    normalised: np.ndarray = probabilities / probabilities.sum()
    return normalised


def _cumulative(cells: np.ndarray) -> tuple[tuple[float, float], ...]:
    running = np.cumsum(cells)
    bounds = (*LATENCY_BUCKETS, math.inf)
    return tuple((b, float(c)) for b, c in zip(bounds, running, strict=True))


@dataclass(frozen=True)
class Trial:
    """How one simulated rollout ended."""

    outcome: Outcome | None
    reason: str | None
    seconds: float
    canary_requests: float
    canary_failed: float


@dataclass
class SimulationReport:
    trials: list[Trial] = field(default_factory=list)

    def rate(self, outcome: Outcome) -> float:
        return sum(t.outcome is outcome for t in self.trials) / len(self.trials)

    def summary(self) -> dict[str, Any]:
        seconds = sorted(t.seconds for t in self.trials)
        return {
            "trials": len(self.trials),
            "promote_rate": self.rate(Outcome.PROMOTED),
            "rollback_rate": self.rate(Outcome.ROLLED_BACK),
            "pause_rate": self.rate(Outcome.PAUSED),
            "mean_time_to_decision": statistics.fmean(seconds),
            "p95_time_to_decision": seconds[max(0, math.ceil(0.95 * len(seconds)) - 1)],
            "mean_canary_requests": statistics.fmean(t.canary_requests for t in self.trials),
            "mean_failed_canary_requests": statistics.fmean(t.canary_failed for t in self.trials),
            "rollback_reasons": _count(t.reason for t in self.trials if t.reason),
        }


def _count(values: Any) -> dict[str, int]:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


def simulation_settings(strategy: CanaryStrategy) -> EnvironmentConfig:
    """An environment with only the analysis settings mattering (no hooks, no smoke tests)."""
    return EnvironmentConfig(
        service="simulated",
        environment="simulation",
        canary=strategy,
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(url="sqlite://"),
    )


def run_trial(strategy: CanaryStrategy, model: TrafficModel, rng: np.random.Generator) -> Trial:
    """One rollout with the real controller, start to decision, in virtual time."""
    clock = VirtualClock()
    router = SimulatedRouter(clock)
    traffic = SimulatedTraffic(model, router, rng)
    controller = RolloutController(
        simulation_settings(strategy),
        store=MemoryStore(),
        router=router,
        provider=traffic,
        clock=clock,
    )
    state = controller.start("simulated")
    requests, failed = traffic.canary_served(clock.now())
    return Trial(
        outcome=state.outcome,
        reason=state.reason.value if state.reason else None,
        seconds=state.updated_at - state.started_at,
        canary_requests=requests,
        canary_failed=failed,
    )


def simulate(
    strategy: CanaryStrategy,
    model: TrafficModel,
    *,
    trials: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> SimulationReport:
    """`trials` independent rollouts; the same seed gives the same report."""
    report = SimulationReport()
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(trials)):
        report.trials.append(run_trial(strategy, model, np.random.default_rng(child)))
        if progress is not None:
            progress(index + 1)
    return report
