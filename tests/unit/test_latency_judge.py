"""Tests of the Kayenta-style latency judge: Mann-Whitney U, Hodges-Lehmann and the verdict."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from itertools import accumulate, combinations, pairwise
from statistics import NormalDist

import pytest

from safeship.analysis.latency import (
    Classification,
    MannWhitney,
    Observations,
    judge_latency,
    mann_whitney,
    observations,
)
from safeship.analysis.verdict import CheckResult, Result
from safeship.config import LatencyJudgeCheck
from safeship.providers.interface import VersionSample

INF = math.inf
PROMETHEUS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def raw(values: list[float]) -> VersionSample:
    return VersionSample(requests=len(values), errors=0.0, latency_samples=tuple(values))


def binned(buckets: tuple[tuple[float, float], ...]) -> VersionSample:
    return VersionSample(requests=buckets[-1][1], errors=0.0, latency_buckets=buckets)


def histogram(
    values: list[float], bounds: tuple[float, ...] = PROMETHEUS_BOUNDS
) -> tuple[tuple[float, float], ...]:
    cumulative = tuple((b, float(sum(1 for v in values if v <= b))) for b in bounds)
    return (*cumulative, (INF, float(len(values))))


def obs(values: list[float]) -> Observations:
    result = Observations.of((v, 1.0) for v in values)
    assert result is not None
    return result


def normal(mean: float, sd: float, n: int, phase: float = 0.5) -> list[float]:
    """n evenly spread quantiles of a normal distribution: a deterministic 'sample'."""
    return [NormalDist(mean, sd).inv_cdf((i + phase) / n) for i in range(n)]


# Brute force from textbook definitions, on whole samples: midranks, tie groups, all pairs.


def rank_sum_u(xs: list[float], ys: list[float]) -> float:
    pooled = sorted(xs + ys)
    midrank = {v: pooled.index(v) + (pooled.count(v) + 1) / 2 for v in pooled}
    return sum(midrank[x] for x in xs) - len(xs) * (len(xs) + 1) / 2


def textbook_z(xs: list[float], ys: list[float]) -> float:
    m, n = len(xs), len(ys)
    size = m + n
    ties = sum(t**3 - t for t in Counter(xs + ys).values())
    sigma = math.sqrt(m * n / 12 * ((size + 1) - ties / (size * (size - 1))))
    deviation = rank_sum_u(xs, ys) - m * n / 2
    if sigma == 0:
        return 0.0
    return math.copysign(max(abs(deviation) - 0.5, 0.0), deviation) / sigma


def brute_interval(xs: list[float], ys: list[float], confidence: float) -> tuple[float, float]:
    """Every shift whose shifted canary is not rejected, probing each difference and each gap."""
    critical = NormalDist().inv_cdf((1 + confidence) / 2)
    diffs = sorted({x - y for x in xs for y in ys})
    # (probe shift, lowest and highest shift it stands for)
    probes = [(d, d, d) for d in diffs]
    probes += [((a + b) / 2, a, b) for a, b in pairwise(diffs)]
    probes += [(diffs[0] - 1, diffs[0], diffs[0]), (diffs[-1] + 1, diffs[-1], diffs[-1])]
    kept = [
        (low, high)
        for shift, low, high in probes
        if abs(textbook_z([x - shift for x in xs], ys)) <= critical
    ]
    return min(low for low, _ in kept), max(high for _, high in kept)


def check_against_brute_force(xs: list[float], ys: list[float], result: MannWhitney) -> None:
    z = textbook_z(xs, ys)
    assert result.u == rank_sum_u(xs, ys)
    assert result.z == pytest.approx(z, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(min(1.0, 2 * NormalDist().cdf(-abs(z))), abs=1e-12)
    assert result.hl_shift == statistics.median(x - y for x in xs for y in ys)
    assert (result.ci_low, result.ci_high) == brute_interval(xs, ys, result.confidence)


# Mann-Whitney U


def test_u_counts_pairs_where_the_canary_is_slower_as_in_the_tortoise_and_hare_example() -> None:
    # Wikipedia's example: finishing places of six tortoises (T) and six hares (H),
    # T H H H H H T T T T T H; U_T = 25 slower-pairs for the tortoises, min(U) = 11.
    tortoises = [1.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    hares = [2.0, 3.0, 4.0, 5.0, 6.0, 12.0]

    result = mann_whitney(obs(tortoises), obs(hares), 0.98)

    assert result.u == 25.0
    assert result.n_canary * result.n_baseline - result.u == 11.0
    # z = (25 - 36/2 - 1/2) / sqrt(6 * 6 * 13 / 12) = 6.5 / sqrt(39); p = 2 (1 - Phi(z))
    assert result.z == pytest.approx(1.040833, abs=1e-6)
    assert result.p_value == pytest.approx(0.297953, abs=1e-6)


def test_tied_values_count_half_and_shrink_the_variance() -> None:
    # canary 1 2 2 3 vs baseline 2 3 3 4: one win (3 > 2) and four ties -> U = 3.
    # Pooled tie groups {2 x3, 3 x3}: sigma^2 = 16/12 (9 - 48/56) = 76/7;
    # z = -(5 - 0.5) / sqrt(76/7) = -1.36570, p = 2 Phi(z) = 0.17203.
    result = mann_whitney(obs([1.0, 2.0, 2.0, 3.0]), obs([2.0, 3.0, 3.0, 4.0]), 0.98)

    assert result.u == 3.0
    assert result.z == pytest.approx(-1.36570, abs=1e-5)
    assert result.p_value == pytest.approx(0.17203, abs=1e-5)


def test_normal_approximation_is_close_to_the_exact_permutation_p_value() -> None:
    canary = [3.0, 8.0, 11.0, 12.0, 13.0, 14.0, 17.0]
    baseline = [1.0, 2.0, 4.0, 5.0, 6.0, 9.0, 10.0]
    pooled = sorted(canary + baseline)
    observed = abs(rank_sum_u(canary, baseline) - 24.5)
    splits = list(combinations(range(1, 15), 7))
    extreme = sum(1 for ranks in splits if abs(sum(ranks) - 28 - 24.5) >= observed)
    exact = extreme / len(splits)

    result = mann_whitney(obs(canary), obs(baseline), 0.98)

    assert pooled == sorted(set(pooled))  # no ties: ranks are 1..14
    assert exact == pytest.approx(0.0262, abs=1e-4)
    assert result.p_value == pytest.approx(exact, abs=0.005)


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        ([1.0, 7.0, 8.0, 9.0, 10.0, 11.0], [2.0, 3.0, 4.0, 5.0, 6.0, 12.0]),
        ([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0], [2.0, 3.0, 3.0, 4.0, 5.0]),
        ([4.0, 4.0, 4.0, 6.0, 9.0, 9.0, 12.0, 15.0], [1.0, 2.0, 4.0, 4.0, 6.0, 7.0]),
        ([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0], [1.0, 2.0, 3.0, 4.0]),
        ([3.0], [5.0]),
        ([1.0, 2.0], [0.0]),  # an even number of differences: HL averages the middle two
        ([4.0, 1.0, 7.0, 12.0], [7.0, 7.0, 10.0]),  # the continuity correction moves the ends
        ([2.0, 2.0, 2.0], [2.0, 2.0, 3.0]),
    ],
)
def test_u_p_shift_and_interval_match_brute_force_from_the_definitions(
    canary: list[float], baseline: list[float]
) -> None:
    result = mann_whitney(obs(canary), obs(baseline), 0.9)

    check_against_brute_force(canary, baseline, result)


def test_all_equal_samples_are_no_evidence_p_is_one() -> None:
    result = mann_whitney(obs([0.1] * 50), obs([0.1] * 80), 0.98)

    assert (result.z, result.p_value) == (0.0, 1.0)
    assert (result.hl_shift, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)


def test_two_constant_samples_still_separate_without_jitter() -> None:
    # Kayenta jitters constant samples; the tie correction handles them exactly.
    result = mann_whitney(obs([0.5] * 30), obs([0.25] * 30), 0.98)

    assert result.p_value < 1e-10
    assert (result.hl_shift, result.ci_low, result.ci_high) == (0.25, 0.25, 0.25)


# Binned data


def test_buckets_stand_at_their_midpoints_and_inf_at_the_last_finite_bound() -> None:
    sample = binned(((0.1, 4.0), (0.25, 4.0), (0.5, 9.0), (INF, 10.0)))

    assert observations(sample) == Observations((0.05, 0.375, 0.5), (4.0, 5.0, 1.0))


def test_a_dipping_cumulative_count_is_not_counted_twice() -> None:
    sample = binned(((0.1, 4.0), (0.25, 3.0), (0.5, 6.0), (INF, 6.0)))

    assert observations(sample) == Observations((0.05, 0.375), (4.0, 2.0))


def test_raw_samples_are_preferred_to_buckets() -> None:
    sample = VersionSample(
        requests=2.0,
        errors=0.0,
        latency_buckets=((0.1, 2.0), (INF, 2.0)),
        latency_samples=(0.07, 0.03, 0.07),
    )

    assert observations(sample) == Observations((0.03, 0.07), (1.0, 2.0))


@pytest.mark.parametrize(
    "sample",
    [
        binned(((0.1, 0.0), (INF, 0.0))),
        binned(((INF, 5.0),)),
        VersionSample(requests=0.0, errors=0.0),
        raw([math.nan]),
    ],
)
def test_nothing_observed_is_no_observations(sample: VersionSample) -> None:
    assert observations(sample) is None


def test_binned_computation_agrees_with_expanding_bins_into_midpoint_samples() -> None:
    # Dyadic bounds keep every midpoint and difference exact in binary floating point.
    bounds = (0.25, 0.5, 1.0, 2.0, 4.0)
    canary_buckets = ((0.25, 1.0), (0.5, 4.0), (1.0, 9.0), (2.0, 15.0), (4.0, 17.0), (INF, 18.0))
    baseline_buckets = ((0.25, 3.0), (0.5, 9.0), (1.0, 14.0), (2.0, 16.0), (4.0, 16.0), (INF, 17.0))
    midpoints = (0.125, 0.375, 0.75, 1.5, 3.0, 4.0)

    def expand(buckets: tuple[tuple[float, float], ...]) -> list[float]:
        counts = [b - a for a, b in pairwise([0.0, *(c for _, c in buckets)])]
        return [m for m, c in zip(midpoints, counts, strict=True) for _ in range(int(c))]

    canary_obs = observations(binned(canary_buckets))
    baseline_obs = observations(binned(baseline_buckets))
    assert canary_obs is not None
    assert baseline_obs is not None
    result = mann_whitney(canary_obs, baseline_obs, 0.9)

    assert len(bounds) + 1 == len(midpoints)
    check_against_brute_force(expand(canary_buckets), expand(baseline_buckets), result)


def test_twenty_buckets_of_a_million_requests_each_are_judged_without_expansion() -> None:
    bounds = (*(0.001 * 1.5**k for k in range(19)), INF)
    baseline_counts = [1e6] * 20
    canary_counts = [1e6 * (k + 1) for k in range(20)]  # the same buckets, weighted to the slow end

    def cumulative(counts: list[float]) -> tuple[tuple[float, float], ...]:
        return tuple(zip(bounds, accumulate(counts), strict=True))

    result, p = judge_latency(
        LatencyJudgeCheck(), binned(cumulative(canary_counts)), binned(cumulative(baseline_counts))
    )

    assert result.details["n_baseline"] == 2e7
    assert result.details["n_canary"] == 2.1e8
    assert result.details["ci_low"] > 0
    assert result.details["classification"] == "High"
    assert p is not None
    assert p < 1e-10


# The judge


def test_identical_distributions_pass_with_a_large_p_value() -> None:
    baseline = normal(0.1, 0.02, 400, phase=0.25)
    canary = normal(0.1, 0.02, 400, phase=0.75)  # interleaved draws of the same distribution

    result, log_p = judge_latency(LatencyJudgeCheck(), raw(canary), raw(baseline))

    assert result.result is Result.PASS
    assert result.details["classification"] == "Pass"
    assert result.details["p_value"] > 0.5
    assert result.details["ci_low"] < 0 < result.details["ci_high"]
    assert log_p is not None
    assert log_p > math.log(0.5)


def test_a_300ms_shift_in_raw_samples_is_high_and_fails() -> None:
    baseline = normal(0.1, 0.02, 1000)
    canary = [v + 0.3 for v in baseline]

    result, p = judge_latency(LatencyJudgeCheck(tail_quantile=0.99), raw(canary), raw(baseline))

    assert result.result is Result.FAIL
    assert result.kind == "latency_judge"
    assert result.details["classification"] == "High"
    assert result.details["hl_shift"] == pytest.approx(0.3)
    assert 0.29 < result.details["ci_low"] <= 0.3 <= result.details["ci_high"] < 0.31
    assert result.details["mean_ratio"] == pytest.approx(4.0)
    assert (result.canary, result.baseline) == (pytest.approx(0.4), pytest.approx(0.1))
    assert result.limit == pytest.approx(0.125)
    assert p is not None
    assert p < 1e-40
    assert result.reason.startswith(
        "Mann-Whitney on raw samples: canary 400ms vs baseline 100ms mean (x4.00, tolerance 25%): "
        "shift +300ms [29"
    )
    assert "at 98%, p=" in result.reason
    assert "-> High" in result.reason


def test_a_300ms_shift_in_prometheus_buckets_is_high_and_fails() -> None:
    baseline = normal(0.1, 0.02, 1000)
    canary = [v + 0.3 for v in baseline]

    result, p = judge_latency(
        LatencyJudgeCheck(), binned(histogram(canary)), binned(histogram(baseline))
    )

    assert result.result is Result.FAIL
    assert result.details["classification"] == "High"
    assert result.details["ci_low"] > 0
    assert result.details["mean_ratio"] > 2
    assert p is not None
    assert p < 1e-40


def test_a_significant_shift_within_tolerance_passes_and_fails_without_it() -> None:
    baseline = normal(0.1, 0.01, 2000)
    canary = [v + 0.005 for v in baseline]  # +5%: clearly real, too small to matter

    tolerant, p = judge_latency(LatencyJudgeCheck(), raw(canary), raw(baseline))
    strict, _ = judge_latency(LatencyJudgeCheck(tolerance=0.0), raw(canary), raw(baseline))

    assert p is not None
    assert p < 1e-10
    assert tolerant.details["ci_low"] > 0
    assert tolerant.result is Result.PASS
    assert tolerant.details["classification"] == "Pass"
    assert strict.result is Result.FAIL
    assert strict.details["classification"] == "High"


def test_an_interval_clear_of_zero_must_also_clear_a_quarter_of_the_shift_as_in_kayenta() -> None:
    # A shift of 2.5 on 12 vs 12 observations: the 70% interval [0.5, 4.5] clears 0
    # but not 0.25 x 2.5; the 51% interval [1.5, 3.5] clears both.
    baseline = [float(v) for v in range(1, 13)]
    canary = [v + 2.5 for v in baseline]  # mean ratio 9 / 6.5 = 1.38, beyond tolerance

    def judge(confidence: float) -> CheckResult:
        check = LatencyJudgeCheck(confidence=confidence, max_tail_ratio=None)
        return judge_latency(check, raw(canary), raw(baseline))[0]

    loose, tight = judge(0.7), judge(0.51)

    assert (loose.details["ci_low"], loose.details["ci_high"]) == (0.5, 4.5)
    assert loose.details["classification"] == "Pass"
    assert loose.result is Result.PASS
    assert (tight.details["ci_low"], tight.details["ci_high"]) == (1.5, 3.5)
    assert tight.details["classification"] == "High"
    assert tight.result is Result.FAIL


@pytest.mark.parametrize(
    ("direction", "faster_canary", "expected"),
    [
        ("increase", False, Result.FAIL),
        ("increase", True, Result.PASS),
        ("decrease", False, Result.PASS),
        ("decrease", True, Result.FAIL),
        ("either", False, Result.FAIL),
        ("either", True, Result.FAIL),
    ],
)
def test_only_a_shift_in_the_harmful_direction_fails(
    direction: str, faster_canary: bool, expected: Result
) -> None:
    slow, fast = normal(0.4, 0.02, 500), normal(0.1, 0.02, 500)
    canary, baseline = (fast, slow) if faster_canary else (slow, fast)
    check = LatencyJudgeCheck.model_validate({"direction": direction, "max_tail_ratio": None})

    result, log_p = judge_latency(check, raw(canary), raw(baseline))

    assert result.details["classification"] == ("Low" if faster_canary else "High")
    assert result.result is expected
    assert log_p is not None
    assert (log_p < math.log(1e-10)) is (expected is Result.FAIL)


def test_decrease_limit_is_below_the_baseline_mean() -> None:
    baseline = normal(0.1, 0.02, 100)
    check = LatencyJudgeCheck(direction="decrease")

    result, _ = judge_latency(check, raw(baseline), raw(baseline))

    assert result.limit == pytest.approx(0.075)


def test_a_blown_tail_fails_even_when_the_means_are_close() -> None:
    baseline = normal(0.1, 0.01, 1000)
    canary = baseline[:980] + [0.9] * 20  # 2% of requests now take 900ms

    limited = LatencyJudgeCheck(max_tail_ratio=1.5)
    result, _ = judge_latency(limited, raw(canary), raw(baseline))
    relaxed, _ = judge_latency(LatencyJudgeCheck(), raw(canary), raw(baseline))

    assert result.details["mean_ratio"] < 1.25
    assert result.details["classification"] == "Pass"
    assert result.details["tail_ratio"] > 1.5
    assert result.result is Result.FAIL
    assert "p99 900ms is x7." in result.reason
    assert relaxed.result is Result.PASS


def test_tail_of_buckets_is_prometheus_histogram_quantile() -> None:
    canary = ((0.1, 900.0), (0.5, 980.0), (1.0, 1000.0), (INF, 1000.0))
    baseline = ((0.1, 900.0), (0.5, 1000.0), (1.0, 1000.0), (INF, 1000.0))

    limited = LatencyJudgeCheck(max_tail_ratio=1.5)
    result, _ = judge_latency(limited, binned(canary), binned(baseline))

    assert result.details["canary_tail"] == pytest.approx(0.75)
    assert result.details["baseline_tail"] == pytest.approx(0.46)
    assert result.details["tail_ratio"] == pytest.approx(0.75 / 0.46)
    assert result.result is Result.FAIL


def test_a_tail_from_too_few_samples_is_not_judged() -> None:
    # Two slow requests out of 100 put p99 far out, but 100 samples cannot place a p99.
    canary = ((0.1, 90.0), (0.5, 98.0), (1.0, 100.0), (INF, 100.0))
    baseline = ((0.1, 90.0), (0.5, 100.0), (1.0, 100.0), (INF, 100.0))

    result, _ = judge_latency(LatencyJudgeCheck(), binned(canary), binned(baseline))

    assert result.details["tail_ratio"] > 1.5
    assert result.details["tail_judged"] is False
    assert result.result is Result.PASS


@pytest.mark.parametrize(
    ("canary", "baseline", "missing"),
    [
        (raw([]), raw([0.1]), "canary"),
        (raw([0.1]), binned(((0.1, 0.0), (INF, 0.0))), "baseline"),
        (raw([]), raw([]), "canary and baseline"),
    ],
)
def test_no_data_is_inconclusive_and_untested(
    canary: VersionSample, baseline: VersionSample, missing: str
) -> None:
    result, p = judge_latency(LatencyJudgeCheck(name="lat"), canary, baseline)

    assert result.result is Result.INCONCLUSIVE
    assert result.name == "lat"
    assert result.reason == f"no latency observations for {missing}"
    assert result.details["classification"] == Classification.NODATA.value
    assert p is None


def test_details_carry_every_figure_needed_to_explain_the_verdict() -> None:
    baseline = normal(0.1, 0.02, 200)

    result, _ = judge_latency(LatencyJudgeCheck(), raw(baseline), raw(baseline))

    assert set(result.details) >= {
        "u",
        "z",
        "p_value",
        "hl_shift",
        "ci_low",
        "ci_high",
        "confidence",
        "mean_ratio",
        "tolerance",
        "n_canary",
        "n_baseline",
        "tail_quantile",
        "canary_tail",
        "baseline_tail",
        "tail_ratio",
        "classification",
    }
    assert result.details["p_value"] == 1.0
    assert result.details["u"] == 200 * 200 / 2
    assert result.result is Result.PASS
