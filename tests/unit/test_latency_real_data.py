"""The latency judge on data as it comes: tied in buckets, slow in the tail, looked at often.

The adversary's cases: latencies that share histogram buckets (the
Hodges-Lehmann shift of bucket midpoints is 0 with interval [0, 0] and once
passed a canary four times slower), a tail regression below p99 (1% of
requests at 5 s, the mean x3: once passed), and an A/A rollout looked at every
interval for ten minutes (a fixed-sample test re-run at every look falsely
rejects most such runs; the judge must stay under its alpha).
"""

from __future__ import annotations

import math

import numpy as np

from safeship.analysis import Result, evaluate, slow_share
from safeship.config import CanaryStrategy, LatencyJudgeCheck, SequentialErrorRateCheck
from safeship.providers.interface import Measurement, VersionSample, Window
from safeship.rollout.machine import Outcome
from safeship.sample_service import LATENCY_BUCKETS
from safeship.simulation import TrafficModel, simulate

BOUNDS = (*LATENCY_BUCKETS, math.inf)
LATENCY_ONLY = CanaryStrategy(checks=(LatencyJudgeCheck(),), min_requests=100)


def _cumulative(counts: list[float]) -> tuple[tuple[float, float], ...]:
    running = np.cumsum(counts)
    return tuple((b, float(c)) for b, c in zip(BOUNDS, running, strict=True))


def test_latencies_sharing_buckets_are_compared_bucket_by_bucket() -> None:
    # Nearly every baseline request lands in one bucket; a quarter of the canary's in the
    # bucket above. Every pairwise difference of midpoints is 0 or one bucket width.
    cells = [0.0] * len(BOUNDS)
    baseline, canary = list(cells), list(cells)
    baseline[2], baseline[3] = 8900.0, 100.0  # (10, 25] ms, a little (25, 50]
    canary[2], canary[3] = 750.0, 250.0
    m = Measurement(
        Window(0.0, 60.0),
        VersionSample(1000.0, 0.0, _cumulative(canary)),
        VersionSample(9000.0, 0.0, _cumulative(baseline)),
    )

    verdict = evaluate(m, LATENCY_ONLY)

    assert verdict.result is Result.FAIL
    latency = verdict.checks[0]
    assert "requests slower than 25ms: canary 25.00% (250/1000) vs baseline 1.11%" in latency.reason
    assert "bucket by bucket" in latency.reason
    assert "Mann-Whitney on bucket midpoints" in latency.reason
    assert "(bucket estimates)" in latency.reason


def test_a_slow_tail_below_p99_is_rolled_back() -> None:
    # 1% of the canary's requests take 100x the median (5 s): the mean is about x3.
    tail = TrafficModel(rps=50, canary_slow_share=0.01, canary_slow_factor=100)
    report = simulate(CanaryStrategy(hold=300), tail, trials=20, seed=5)
    assert report.rate(Outcome.ROLLED_BACK) >= 0.9
    assert report.summary()["rollback_reasons"].get("high_latency", 0) >= 18


def test_an_a_a_rollout_looked_at_every_interval_stays_under_alpha() -> None:
    check = LatencyJudgeCheck()
    rng = np.random.default_rng(20261201)
    p = _lognormal_cells(0.05, 0.5)
    runs, looks, rejections = 300, 60, 0  # ten minutes at a look every 10 s
    for rps in (50, 500):
        for _ in range(runs):
            evidence = slow_share.SlowShareEvidence()
            for _ in range(looks):
                canary = rng.multinomial(rng.poisson(rps * 10 * 0.1), p)
                baseline = rng.multinomial(rng.poisson(rps * 10 * 0.9), p)
                evidence = slow_share.update(
                    check, evidence, _cumulative(list(canary)), _cumulative(list(baseline))
                )
                if evidence.log_evidence >= math.log(1 / check.alpha):
                    rejections += 1
                    break
    assert rejections / (2 * runs) <= check.alpha


def test_the_latency_test_ranks_with_the_error_test_under_holm() -> None:
    strategy = CanaryStrategy(checks=(SequentialErrorRateCheck(), LatencyJudgeCheck()))
    cells = [0.0] * len(BOUNDS)
    cells[3] = 1000.0
    same = _cumulative(cells)
    m = Measurement(
        Window(0.0, 60.0), VersionSample(1000.0, 5.0, same), VersionSample(9000.0, 45.0, same)
    )
    verdict = evaluate(m, strategy)
    assert verdict.result is Result.PASS
    latency = next(c for c in verdict.checks if c.name == "latency")
    assert latency.details["p_value"] == 1.0


def _lognormal_cells(median: float, sigma: float) -> np.ndarray:
    from statistics import NormalDist

    normal = NormalDist(math.log(median), sigma)
    cdf = [normal.cdf(math.log(b)) for b in LATENCY_BUCKETS] + [1.0]
    cells: np.ndarray = np.diff([0.0, *cdf])
    return cells / cells.sum()
