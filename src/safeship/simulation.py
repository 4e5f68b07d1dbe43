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
from safeship.routers.interface import Router, RouterHealth
from safeship.sample_service import LATENCY_BUCKETS
from safeship.testing import MemoryStore


@dataclass(frozen=True)
class TrafficModel:
    """The service under test: load, error rates, latency (log-normal, median and spread)."""

    rps: float = 50.0
    baseline_error_rate: float = 0.005
    canary_error_rate: float = 0.005
    baseline_latency_median: float = 0.05
    latency_sigma: float = 0.5
    canary_latency_factor: float = 1.0


class SimulatedRouter(Router):
    """Remembers which weight was in force when, on the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.changes: list[tuple[float, int]] = [(clock.now(), 0)]

    def set_weight(self, weight: int) -> None:
        self.changes.append((self.clock.now(), weight))

    def get_weight(self) -> int:
        return self.changes[-1][1]

    def health(self) -> RouterHealth:
        return RouterHealth(True, "simulated")

    def weight_at(self, at: float) -> int:
        weight = self.changes[0][1]
        for when, value in self.changes:
            if when > at:
                break
            weight = value
        return weight


@dataclass
class _Chunk:
    start: float
    end: float
    counts: np.ndarray  # canary requests, canary errors, baseline requests, baseline errors
    canary_buckets: np.ndarray
    baseline_buckets: np.ndarray


class SimulatedTraffic(MetricsProvider):
    """Random traffic through a `SimulatedRouter`, generated up to each look, one second at a time.

    Each second's split follows the weight in force during it, so the traffic
    a canary serves during warm-ups and after a rollback is counted too.
    """

    def __init__(
        self, model: TrafficModel, router: SimulatedRouter, rng: np.random.Generator
    ) -> None:
        self.model = model
        self.router = router
        self.rng = rng
        self.generated_until = router.clock.now()
        self.chunks: list[_Chunk] = []
        self._canary_p = _bucket_probabilities(
            model.baseline_latency_median * model.canary_latency_factor, model.latency_sigma
        )
        self._baseline_p = _bucket_probabilities(model.baseline_latency_median, model.latency_sigma)

    def window_opened(self, at: float) -> None:
        self._generate_until(at)

    def measure(self, window: Window) -> Measurement:
        self._generate_until(window.end)
        inside = [c for c in self.chunks if c.start >= window.start and c.end <= window.end]
        counts = sum((c.counts for c in inside), np.zeros(4))
        canary_b = sum((c.canary_buckets for c in inside), np.zeros(len(LATENCY_BUCKETS) + 1))
        baseline_b = sum((c.baseline_buckets for c in inside), np.zeros(len(LATENCY_BUCKETS) + 1))
        return Measurement(
            window=window,
            canary=VersionSample(float(counts[0]), float(counts[1]), _cumulative(canary_b)),
            baseline=VersionSample(float(counts[2]), float(counts[3]), _cumulative(baseline_b)),
            queries={"canary": "simulated", "baseline": "simulated"},
        )

    def canary_served(self, until: float) -> tuple[float, float]:
        """Requests and failed requests the canary served up to `until` (ground truth)."""
        self._generate_until(until)
        requests = sum(float(c.counts[0]) for c in self.chunks if c.end <= until)
        failed = sum(float(c.counts[1]) for c in self.chunks if c.end <= until)
        return requests, failed

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
        total_c, total_b = int(canary_n.sum()), int(baseline_n.sum())
        self.chunks.append(
            _Chunk(
                start,
                until,
                np.array([total_c, canary_e.sum(), total_b, baseline_e.sum()], dtype=float),
                self.rng.multinomial(total_c, self._canary_p).astype(float),
                self.rng.multinomial(total_b, self._baseline_p).astype(float),
            )
        )
        self.generated_until = until


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
