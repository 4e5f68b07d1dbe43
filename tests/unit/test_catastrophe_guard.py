"""A canary failing most of its requests is gone in seconds, whatever the settings say.

The adversary's cases: a catastrophic canary at 1000 rps (once kept for ten
minutes), one that fails during a long warm-up, pause settings that would
hold it, and an incident that hits both versions alike (not the canary's
fault: the guard must stay quiet there and leave it to the analysis).
"""

from __future__ import annotations

import numpy as np
import pytest

from safeship.analysis import guard
from safeship.analysis.sequential import Counts
from safeship.config import Action, CanaryStrategy, CatastropheGuard, Limits
from safeship.rollout.machine import Outcome
from safeship.simulation import TrafficModel, simulate

PAUSING = Limits(
    on_failure=Action.PAUSE, on_suspected_harm=Action.PAUSE, on_inconclusive=Action.PAUSE
)


def test_a_canary_failing_every_request_at_1000_rps_fails_fewer_than_500() -> None:
    report = simulate(
        CanaryStrategy(), TrafficModel(rps=1000, canary_error_rate=1.0), trials=20, seed=1
    )
    summary = report.summary()
    assert report.rate(Outcome.ROLLED_BACK) == 1.0
    assert summary["rollback_reasons"] == {"high_error_rate": 20}
    assert summary["mean_failed_canary_requests"] < 500
    assert summary["p95_time_to_decision"] <= 5


@pytest.mark.parametrize("error_rate", [1.0, 0.5])
def test_pause_settings_cannot_hold_back_a_catastrophic_canary(error_rate: float) -> None:
    strategy = CanaryStrategy(limits=PAUSING)
    report = simulate(
        strategy, TrafficModel(rps=1000, canary_error_rate=error_rate), trials=10, seed=2
    )
    assert report.rate(Outcome.ROLLED_BACK) == 1.0
    assert report.summary()["mean_failed_canary_requests"] < 500


def test_the_guard_looks_during_a_long_warmup_and_interval() -> None:
    strategy = CanaryStrategy(hold=600, warmup=120, interval=120)
    report = simulate(strategy, TrafficModel(rps=1000, canary_error_rate=0.9), trials=10, seed=3)
    assert report.rate(Outcome.ROLLED_BACK) == 1.0
    assert report.summary()["p95_time_to_decision"] <= 5


def test_half_failing_is_never_slower_than_five_percent() -> None:
    times = {}
    for rate in (0.05, 0.5, 1.0):
        summary = simulate(
            CanaryStrategy(), TrafficModel(rps=1000, canary_error_rate=rate), trials=20, seed=4
        ).summary()
        times[rate] = summary["mean_time_to_decision"]
    assert times[1.0] <= times[0.5] <= times[0.05]


def test_an_incident_on_both_versions_is_not_the_guards_to_judge() -> None:
    settings = CatastropheGuard()
    state = guard.GuardState()
    for _ in range(120):  # two minutes of 30% errors on both versions, one look a second
        state = guard.update(settings, state, Counts(100, 30, 900, 270))
    assert guard.judge(settings, state) is None


def test_a_healthy_start_does_not_slow_the_guard_down() -> None:
    settings = CatastropheGuard()
    state = guard.GuardState()
    for _ in range(3600):  # an hour of a healthy canary, then it breaks
        state = guard.update(settings, state, Counts(100, 0, 900, 4))
    state = guard.update(settings, state, Counts(100, 100, 900, 4))
    alarm = guard.judge(settings, state)
    assert alarm is not None
    assert "100 of 100 requests" in alarm.reason


def test_false_alarms_at_the_guards_own_limits_stay_within_alpha_per_hour() -> None:
    # A canary exactly at the guard's null boundary (failing error_ratio of its requests,
    # baseline_factor x the baseline's rate); a loose alpha makes alarms frequent enough
    # to count. Every alarm restarts the guard, as a new rollout would.
    settings = CatastropheGuard(alpha=0.4)
    rng = np.random.default_rng(20261201)
    hours, alarms = 40, 0
    for _ in range(hours):
        state = guard.GuardState()
        for _ in range(3600):
            n_c, n_b = rng.poisson(10), rng.poisson(90)
            x = rng.binomial(n_c, settings.error_ratio)
            y = rng.binomial(n_b, settings.error_ratio / settings.baseline_factor)
            state = guard.update(settings, state, Counts(n_c, x, n_b, y))
            if guard.judge(settings, state) is not None:
                alarms += 1
                state = guard.GuardState()
    assert alarms <= settings.alpha * hours
