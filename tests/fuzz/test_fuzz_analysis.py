"""The analysis under arbitrary figures: no crash, no NaN verdict, monotone in canary errors.

Monotone means: with everything else equal, more canary errors never make a
rollback less likely. It is checked for the sequential test, for the threshold
check and for the whole evaluation with the default checks, over a single
window and after a history of earlier windows.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import assume, given
from hypothesis import strategies as st

from safeship.analysis import sequential
from safeship.analysis.evaluate import Memory, evaluate
from safeship.analysis.threshold import threshold_check
from safeship.analysis.verdict import Result
from safeship.config import CanaryStrategy, ErrorRateCheck, SequentialErrorRateCheck
from safeship.providers.interface import Measurement, VersionSample, Window

STRATEGY = CanaryStrategy()  # the default checks: sequential error test + latency judge
CHECK = SequentialErrorRateCheck()

counts = st.integers(min_value=0, max_value=5000)
figures = st.one_of(
    st.floats(min_value=0, max_value=1e7),
    st.sampled_from([math.nan, math.inf, -1.0, 0.0]),
)
bucket_bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)


@st.composite
def buckets(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    increments = draw(st.lists(st.integers(0, 400), min_size=11, max_size=11))
    total, cumulative = 0.0, []
    for le, inc in zip(bucket_bounds, increments, strict=True):
        total += inc
        cumulative.append((le, total))
    return tuple(cumulative)


def measure(canary: VersionSample, baseline: VersionSample) -> Measurement:
    return Measurement(Window(0.0, 60.0), canary, baseline)


@given(figures, figures, figures, figures, buckets(), buckets())
def test_any_figures_give_a_verdict_without_nan(
    canary_requests: float,
    canary_errors: float,
    baseline_requests: float,
    baseline_errors: float,
    canary_buckets: tuple[tuple[float, float], ...],
    baseline_buckets: tuple[tuple[float, float], ...],
) -> None:
    canary = VersionSample(canary_requests, canary_errors, canary_buckets)
    baseline = VersionSample(baseline_requests, baseline_errors, baseline_buckets)
    verdict = evaluate(measure(canary, baseline), STRATEGY)
    assert verdict.result in Result
    for check in verdict.checks:
        for key in ("e_value", "p_value"):
            value = check.details.get(key)
            assert value is None or not math.isnan(value), (key, check)
    if any(math.isnan(v) for v in (canary_requests, canary_errors)):
        assert verdict.result is not Result.PASS  # unknown figures never pass


def fails_sequential(n_c: int, x_c: int, n_b: int, x_b: int, before: sequential.Counts) -> bool:
    evidence = sequential.update(CHECK, sequential.Evidence(), before)
    evidence = sequential.update(CHECK, evidence, sequential.Counts(n_c, x_c, n_b, x_b))
    judged = sequential.judge(CHECK, evidence, enough_data=True, short_reason="")
    return judged.result.result is Result.FAIL


@given(counts, counts, counts, counts, st.integers(1, 50), counts, counts, counts, counts)
def test_more_canary_errors_never_make_the_sequential_test_more_lenient(
    n_c: int,
    x_c: int,
    n_b: int,
    x_b: int,
    more: int,
    pn_c: int,
    px_c: int,
    pn_b: int,
    px_b: int,
) -> None:
    assume(x_c + more <= n_c and x_b <= n_b and px_c <= pn_c and px_b <= pn_b)
    before = sequential.Counts(pn_c, px_c, pn_b, px_b)
    if fails_sequential(n_c, x_c, n_b, x_b, before):
        assert fails_sequential(n_c, x_c + more, n_b, x_b, before)


@given(counts, counts, counts, counts, st.integers(1, 50))
def test_more_canary_errors_never_make_the_threshold_check_more_lenient(
    n_c: int, x_c: int, n_b: int, x_b: int, more: int
) -> None:
    assume(x_c + more <= n_c and x_b <= n_b)
    check = ErrorRateCheck()
    baseline = VersionSample(n_b, x_b)
    first = threshold_check(check, VersionSample(n_c, x_c), baseline)
    second = threshold_check(check, VersionSample(n_c, x_c + more), baseline)
    if first.result is Result.FAIL:
        assert second.result is Result.FAIL


@given(counts, counts, counts, counts, st.integers(1, 50), buckets())
def test_more_canary_errors_never_make_a_rollback_less_likely(
    n_c: int,
    x_c: int,
    n_b: int,
    x_b: int,
    more: int,
    latency: tuple[tuple[float, float], ...],
) -> None:
    assume(x_c + more <= n_c and x_b <= n_b)
    baseline = VersionSample(n_b, x_b, latency)
    canary = VersionSample(n_c, x_c, latency)
    first = evaluate(measure(canary, baseline), STRATEGY, Memory())
    second = evaluate(measure(replace(canary, errors=x_c + more), baseline), STRATEGY, Memory())
    if first.result is Result.FAIL:
        assert second.result is Result.FAIL, (first.reason, second.reason)
