"""The worse the canary, the stronger the verdict: no correction, ordering or limit reverses it.

These are the adversary's cases: evidence so strong that a float p-value
underflows to 0, and the whole evaluation swept over canary error rates from
x1.5 to 100% and loads from 5 to 5,000 rps, where a stronger regression must
never give a weaker verdict.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeship.analysis import Result, evaluate
from safeship.analysis.evaluate import Memory
from safeship.config import CanaryStrategy
from safeship.providers.interface import Measurement, VersionSample, Window
from safeship.rollout.machine import Outcome
from safeship.sample_service import LATENCY_BUCKETS
from safeship.simulation import TrafficModel, simulate

STRATEGY = CanaryStrategy()  # the defaults: sequential error test + latency judge
SEVERITY = {Result.PASS: 0, Result.INCONCLUSIVE: 1, Result.ERROR: 1, Result.FAIL: 2}


def _buckets(requests: float, latency: float = 0.02) -> tuple[tuple[float, float], ...]:
    finite = tuple((b, requests if latency <= b else 0.0) for b in LATENCY_BUCKETS)
    return (*finite, (math.inf, requests))


def _window(
    rps: float, seconds: float, share: float, canary_rate: float, baseline_rate: float
) -> Measurement:
    canary_n, baseline_n = rps * seconds * share, rps * seconds * (1 - share)
    return Measurement(
        Window(0.0, seconds),
        VersionSample(canary_n, canary_n * canary_rate, _buckets(canary_n)),
        VersionSample(baseline_n, baseline_n * baseline_rate, _buckets(baseline_n)),
    )


def test_overwhelming_evidence_of_errors_fails_after_holms_correction() -> None:
    # 50% canary errors vs 0.5% over one minute at 1000 rps: the p-value underflows to 0.0,
    # which Holm's step once ranked as "missing" and overruled.
    verdict = evaluate(_window(1000, 60, 0.1, 0.5, 0.005), STRATEGY)
    assert verdict.result is Result.FAIL
    assert "Holm" not in verdict.reason
    error = next(c for c in verdict.checks if c.name == "error_rate")
    assert error.result is Result.FAIL


def test_a_canary_failing_every_request_fails_on_the_first_look() -> None:
    verdict = evaluate(_window(5000, 600, 0.5, 1.0, 0.005), STRATEGY)
    assert verdict.result is Result.FAIL


@given(
    rps=st.sampled_from([5.0, 50.0, 500.0, 5000.0]),
    seconds=st.sampled_from([10.0, 60.0, 600.0]),
    share=st.sampled_from([0.1, 0.5]),
    baseline_rate=st.sampled_from([0.0, 0.001, 0.005, 0.02]),
    factors=st.tuples(
        st.floats(min_value=1.5, max_value=200.0), st.floats(min_value=1.5, max_value=200.0)
    ),
)
def test_a_worse_canary_never_gets_a_weaker_verdict(
    rps: float, seconds: float, share: float, baseline_rate: float, factors: tuple[float, float]
) -> None:
    low, high = sorted(factors)
    floor = 0.001 if baseline_rate == 0 else baseline_rate
    milder = _window(rps, seconds, share, min(1.0, floor * low), baseline_rate)
    worse = _window(rps, seconds, share, min(1.0, floor * high), baseline_rate)
    first, second = evaluate(milder, STRATEGY), evaluate(worse, STRATEGY)
    assert SEVERITY[second.result] >= SEVERITY[first.result], (first.reason, second.reason)
    # And after the same earlier looks (the evidence carried in memory).
    memory_low = Memory.from_storage(first.memory)
    memory_high = Memory.from_storage(second.memory)
    later = Window(0.0, seconds * 2)
    again_low = evaluate(_grown(milder, later), STRATEGY, memory_low)
    again_high = evaluate(_grown(worse, later), STRATEGY, memory_high)
    assert SEVERITY[again_high.result] >= SEVERITY[again_low.result]


def _grown(measurement: Measurement, window: Window) -> Measurement:
    """The same traffic over a window twice as long (cumulative figures double)."""

    def twice(sample: VersionSample) -> VersionSample:
        return VersionSample(
            sample.requests * 2,
            sample.errors * 2,
            tuple((le, count * 2) for le, count in sample.latency_buckets),
        )

    return Measurement(window, twice(measurement.canary), twice(measurement.baseline))


FAST = CanaryStrategy(hold=60, min_hold=30, warmup=5, interval=10)


@pytest.mark.parametrize("rps", [5.0, 500.0, 5000.0])
def test_simulated_rollouts_of_a_worse_canary_are_never_caught_less_or_later(rps: float) -> None:
    # The same seeds for each error rate: the rollback rate never falls as the canary
    # gets worse, and once every trial is caught, the time to catch it never grows.
    results = []
    for factor in (1.5, 10.0, 40.0, 200.0):
        model = TrafficModel(rps=rps, canary_error_rate=min(1.0, 0.005 * factor))
        report = simulate(FAST, model, trials=8, seed=9)
        results.append(
            (report.rate(Outcome.ROLLED_BACK), report.summary()["mean_time_to_decision"])
        )
    for (rate, seconds), (worse_rate, worse_seconds) in itertools.pairwise(results):
        assert worse_rate >= rate, results
        if rate == worse_rate == 1.0:
            assert worse_seconds <= max(seconds + 1.0, seconds * 1.05), results
    assert results[-1][0] == 1.0  # a canary failing every request is always rolled back
