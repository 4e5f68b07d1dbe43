"""Tests of safeship.analysis: threshold checks, histogram quantiles and verdicts."""

from __future__ import annotations

import json
import math

import pytest

from safeship.analysis import (
    CheckResult,
    Result,
    Verdict,
    error_verdict,
    evaluate,
    histogram_quantile,
)
from safeship.config import CanaryStrategy, CatastropheGuard, ErrorRateCheck, LatencyCheck
from safeship.providers.interface import Measurement, VersionSample, Window

INF = math.inf
WINDOW = Window(start=1_000.0, end=1_060.0)

# 1000 requests: 900 under 100 ms, 990 under 250 ms, all under 1 s.
FAST = ((0.05, 500.0), (0.1, 900.0), (0.25, 990.0), (1.0, 1000.0), (INF, 1000.0))
# 1000 requests: only 100 under 100 ms, 500 under 250 ms, 960 under 1 s.
SLOW = ((0.05, 10.0), (0.1, 100.0), (0.25, 500.0), (1.0, 960.0), (INF, 1000.0))


def sample(
    requests: float = 1000.0,
    errors: float = 0.0,
    buckets: tuple[tuple[float, float], ...] = FAST,
) -> VersionSample:
    return VersionSample(requests=requests, errors=errors, latency_buckets=buckets)


def measure(
    canary: VersionSample, baseline: VersionSample, queries: dict[str, str] | None = None
) -> Measurement:
    return Measurement(window=WINDOW, canary=canary, baseline=baseline, queries=queries or {})


def strategy(*checks: ErrorRateCheck | LatencyCheck, min_requests: int = 100) -> CanaryStrategy:
    if checks:
        return CanaryStrategy(checks=checks, min_requests=min_requests)
    return CanaryStrategy(checks=(ErrorRateCheck(), LatencyCheck()), min_requests=min_requests)


def by_name(verdict: Verdict) -> dict[str, CheckResult]:
    return {c.name: c for c in verdict.checks}


# --- not enough data -------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary_requests", "baseline_requests", "who"),
    [(99.0, 1000.0, "canary 99 < 100"), (1000.0, 50.0, "baseline 50 < 100"), (0.0, 0.0, "canary")],
)
def test_below_min_requests_every_check_is_inconclusive(
    canary_requests: float, baseline_requests: float, who: str
) -> None:
    # The canary is failing badly, but there are too few requests for the threshold checks
    # to say so (the catastrophe guard, which needs no minimum, is tested on its own).
    m = measure(sample(canary_requests, canary_requests, SLOW), sample(baseline_requests))
    quiet = strategy().model_copy(update={"guard": CatastropheGuard(enabled=False)})

    verdict = evaluate(m, quiet)

    assert verdict.result is Result.INCONCLUSIVE
    assert len(verdict.checks) == 2
    for check in verdict.checks:
        assert check.result is Result.INCONCLUSIVE
        assert check.reason.startswith("not enough data")
        assert who in check.reason
    assert "not enough data" in verdict.reason


def test_exactly_min_requests_is_enough() -> None:
    verdict = evaluate(measure(sample(100.0), sample(100.0)), strategy(min_requests=100))

    assert verdict.result is Result.PASS


def test_both_versions_short_are_both_named() -> None:
    verdict = evaluate(measure(sample(10.0), sample(20.0)), strategy())

    reason = verdict.checks[0].reason
    assert "canary 10 < 100 requests" in reason
    assert "baseline 20 < 100 requests" in reason


@pytest.mark.parametrize("which", ["canary", "baseline"])
def test_nan_requests_are_inconclusive_never_pass(which: str) -> None:
    good, nan = sample(), sample(requests=math.nan)
    m = measure(nan, good) if which == "canary" else measure(good, nan)

    verdict = evaluate(m, strategy())

    assert verdict.result is Result.INCONCLUSIVE
    assert all(c.result is Result.INCONCLUSIVE for c in verdict.checks)
    assert f"{which} requests = nan is not a number" in verdict.reason


def test_nan_errors_make_the_error_check_inconclusive() -> None:
    verdict = evaluate(measure(sample(errors=math.nan), sample()), strategy(ErrorRateCheck()))

    assert verdict.result is Result.INCONCLUSIVE
    assert verdict.checks[0].result is Result.INCONCLUSIVE


def test_no_checks_configured_is_inconclusive_not_pass() -> None:
    only_no_checks = CanaryStrategy(checks=())

    verdict = evaluate(measure(sample(), sample()), only_no_checks)

    assert verdict.result is Result.INCONCLUSIVE
    assert verdict.reason == "no checks configured"


# --- error rate --------------------------------------------------------------------


def test_canary_error_ratio_above_relative_limit_fails_with_values() -> None:
    check = ErrorRateCheck(max_ratio=None, max_increase_factor=1.5, margin=0.001)
    # baseline 2%, canary 4%: limit = 0.02 * 1.5 + 0.001 = 0.031
    m = measure(sample(1000.0, 40.0), sample(1000.0, 20.0))

    verdict = evaluate(m, strategy(check))

    result = verdict.checks[0]
    assert verdict.result is Result.FAIL
    assert result.result is Result.FAIL
    assert result.name == "error_rate"
    assert result.kind == "error_rate"
    assert result.canary == pytest.approx(0.04)
    assert result.baseline == pytest.approx(0.02)
    assert result.limit == pytest.approx(0.031)
    assert result.details["basis"] == "relative"
    assert result.details["canary_errors"] == 40.0
    assert result.details["baseline_requests"] == 1000.0
    assert "canary 4.00% vs limit 3.10%" in result.reason
    assert "baseline 2.00% x 1.5" in result.reason
    assert verdict.failed_checks() == (result,)


def test_canary_error_ratio_within_relative_limit_passes() -> None:
    check = ErrorRateCheck(max_ratio=None)
    m = measure(sample(1000.0, 30.0), sample(1000.0, 20.0))  # 3% <= 3.1%

    result = evaluate(m, strategy(check)).checks[0]

    assert result.result is Result.PASS
    assert result.limit == pytest.approx(0.031)


def test_absolute_ceiling_applies_when_lower_than_relative_limit() -> None:
    check = ErrorRateCheck(max_ratio=0.05, max_increase_factor=2.0, margin=0.0)
    # baseline 4% -> relative limit 8%; the absolute 5% is stricter. Canary 6%.
    m = measure(sample(1000.0, 60.0), sample(1000.0, 40.0))

    result = evaluate(m, strategy(check)).checks[0]

    assert result.result is Result.FAIL
    assert result.limit == pytest.approx(0.05)
    assert result.details["basis"] == "absolute"
    assert "absolute max" in result.reason


def test_relative_limit_applies_when_lower_than_absolute_ceiling() -> None:
    check = ErrorRateCheck(max_ratio=0.5, max_increase_factor=1.5, margin=0.001)
    m = measure(sample(1000.0, 20.0), sample(1000.0, 10.0))  # 2% vs 1.6%

    result = evaluate(m, strategy(check)).checks[0]

    assert result.result is Result.FAIL
    assert result.details["basis"] == "relative"
    assert result.limit == pytest.approx(0.016)


def test_zero_errors_on_both_versions_passes() -> None:
    result = evaluate(measure(sample(errors=0.0), sample(errors=0.0)), strategy()).checks[0]

    assert result.result is Result.PASS
    assert result.canary == 0.0
    assert result.baseline == 0.0
    assert result.limit == pytest.approx(0.001)


def test_errors_against_a_clean_baseline_fail_beyond_the_margin() -> None:
    m = measure(sample(1000.0, 5.0), sample(1000.0, 0.0))  # 0.5% vs 0.1%

    result = evaluate(m, strategy(ErrorRateCheck())).checks[0]

    assert result.result is Result.FAIL
    assert result.limit == pytest.approx(0.001)


def test_error_ratio_exactly_at_the_limit_passes() -> None:
    check = ErrorRateCheck(max_ratio=0.05, max_increase_factor=1.0, margin=0.0)
    m = measure(sample(1000.0, 50.0), sample(1000.0, 50.0))

    assert evaluate(m, strategy(check)).checks[0].result is Result.PASS


# --- latency --------------------------------------------------------------------------


def test_latency_p95_is_computed_from_buckets_and_compared_with_baseline() -> None:
    check = LatencyCheck(quantile=0.95, max_increase_factor=1.5, margin_seconds=0.05)

    verdict = evaluate(measure(sample(buckets=SLOW), sample(buckets=FAST)), strategy(check))

    result = verdict.checks[0]

    # canary: rank 950 in (0.25, 1.0] holding 500..960 -> 0.25 + 0.75 * 450/460
    assert result.canary == pytest.approx(0.25 + 0.75 * 450 / 460)
    # baseline: rank 950 in (0.1, 0.25] holding 900..990 -> 0.1 + 0.15 * 50/90
    assert result.baseline == pytest.approx(0.1 + 0.15 * 50 / 90)
    assert result.limit == pytest.approx(result.baseline * 1.5 + 0.05)
    assert result.result is Result.FAIL
    assert result.kind == "latency"
    assert result.details["quantile"] == 0.95
    assert "canary p95" in result.reason


def test_latency_equal_to_baseline_passes() -> None:
    result = evaluate(measure(sample(), sample()), strategy(LatencyCheck())).checks[0]

    assert result.result is Result.PASS
    assert result.canary == result.baseline


def test_latency_absolute_ceiling_applies_when_lower() -> None:
    check = LatencyCheck(max_seconds=0.1, max_increase_factor=10.0)

    result = evaluate(measure(sample(), sample()), strategy(check)).checks[0]

    assert result.result is Result.FAIL  # p95 ~ 0.18 s > 0.1 s, though equal to baseline
    assert result.limit == 0.1
    assert result.details["basis"] == "absolute"


@pytest.mark.parametrize("missing", ["canary", "baseline"])
def test_missing_latency_histogram_is_inconclusive(missing: str) -> None:
    empty = sample(buckets=())
    m = measure(empty, sample()) if missing == "canary" else measure(sample(), empty)

    result = evaluate(m, strategy(LatencyCheck())).checks[0]

    assert result.result is Result.INCONCLUSIVE
    assert result.reason == f"no latency histogram for {missing}"


def test_histogram_with_no_observations_is_inconclusive() -> None:
    zero = sample(buckets=((0.1, 0.0), (INF, 0.0)))

    result = evaluate(measure(zero, sample()), strategy(LatencyCheck())).checks[0]

    assert result.result is Result.INCONCLUSIVE


# --- combining -----------------------------------------------------------------------------


def test_fail_in_one_check_and_inconclusive_in_another_is_a_fail() -> None:
    m = measure(sample(1000.0, 200.0, buckets=()), sample(1000.0, 0.0))

    verdict = evaluate(m, strategy())

    results = by_name(verdict)
    assert results["error_rate"].result is Result.FAIL
    assert results["latency_p95"].result is Result.INCONCLUSIVE
    assert verdict.result is Result.FAIL
    assert verdict.reason.startswith("error_rate: ")  # the reason explains the failure


def test_pass_and_inconclusive_is_inconclusive_not_pass() -> None:
    verdict = evaluate(measure(sample(buckets=()), sample()), strategy())

    assert verdict.result is Result.INCONCLUSIVE
    assert "no latency histogram" in verdict.reason


def test_all_checks_passing_is_a_pass_and_the_reason_lists_them() -> None:
    verdict = evaluate(measure(sample(), sample()), strategy())

    assert verdict.result is Result.PASS
    assert "error_rate: " in verdict.reason
    assert "latency_p95: " in verdict.reason
    assert verdict.failed_checks() == ()


def test_verdict_keeps_sample_sizes_and_window() -> None:
    m = measure(sample(500.0, 5.0), sample(1500.0, 3.0), {"canary_requests": "sum(rate(x[1m]))"})

    verdict = evaluate(m, strategy())

    assert verdict.window == WINDOW
    assert verdict.canary_requests == 500.0
    assert verdict.canary_errors == 5.0
    assert verdict.baseline_requests == 1500.0
    assert verdict.baseline_errors == 3.0
    assert verdict.queries == {"canary_requests": "sum(rate(x[1m]))"}


# --- histogram_quantile ------------------------------------------------------------------------


def test_quantile_interpolates_linearly_within_the_bucket() -> None:
    buckets = ((0.1, 50.0), (0.2, 100.0), (INF, 100.0))

    # rank 75 lies halfway through (0.1, 0.2]
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)


def test_quantile_in_the_first_bucket_interpolates_from_zero() -> None:
    buckets = ((0.4, 100.0), (INF, 100.0))

    assert histogram_quantile(0.5, buckets) == pytest.approx(0.2)


def test_quantile_on_a_bucket_boundary_is_the_bound() -> None:
    buckets = ((0.1, 50.0), (0.2, 100.0), (INF, 100.0))

    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)


def test_rank_in_the_inf_bucket_returns_the_highest_finite_bound() -> None:
    buckets = ((0.1, 10.0), (0.5, 20.0), (INF, 100.0))

    assert histogram_quantile(0.99, buckets) == 0.5


def test_rank_skips_empty_buckets() -> None:
    buckets = ((0.1, 0.0), (0.2, 0.0), (0.4, 100.0), (INF, 100.0))

    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)


@pytest.mark.parametrize("buckets", [(), ((0.1, 0.0), (INF, 0.0))])
def test_quantile_of_an_empty_histogram_is_none(buckets: tuple[tuple[float, float], ...]) -> None:
    assert histogram_quantile(0.95, buckets) is None


def test_quantile_of_nan_total_is_none() -> None:
    assert histogram_quantile(0.5, ((0.1, math.nan), (INF, math.nan))) is None


# --- verdict serialisation ------------------------------------------------------------------------


def test_verdict_to_dict_contains_window_samples_checks_and_queries() -> None:
    m = measure(sample(1000.0, 40.0), sample(1000.0, 20.0), {"canary_errors": "q1"})

    data = evaluate(m, strategy()).to_dict()

    assert data["result"] == "fail"
    assert data["window"] == {"start": 1000.0, "end": 1060.0, "seconds": 60.0}
    assert data["samples"] == {
        "canary_requests": 1000.0,
        "canary_errors": 40.0,
        "baseline_requests": 1000.0,
        "baseline_errors": 20.0,
    }
    assert [c["name"] for c in data["checks"]] == ["error_rate", "latency_p95"]
    error_rate = data["checks"][0]
    assert error_rate["result"] == "fail"
    assert error_rate["kind"] == "error_rate"
    assert error_rate["limit"] == pytest.approx(0.031)
    assert error_rate["details"]["basis"] == "relative"
    assert data["queries"] == {"canary_errors": "q1"}
    json.dumps(data)  # storable as JSON


def test_check_result_to_dict_omits_empty_details() -> None:
    data = CheckResult("x", "latency", Result.INCONCLUSIVE, "no data").to_dict()

    assert data == {
        "name": "x",
        "kind": "latency",
        "result": "inconclusive",
        "reason": "no data",
        "canary": None,
        "baseline": None,
        "limit": None,
    }


def test_error_verdict_is_an_error_with_the_provider_message() -> None:
    verdict = error_verdict(WINDOW, "connection refused")

    assert verdict.result is Result.ERROR
    assert verdict.reason == "provider error: connection refused"
    assert verdict.checks == ()
    data = verdict.to_dict()
    assert data["result"] == "error"
    assert data["window"]["seconds"] == 60.0
    assert data["checks"] == []
