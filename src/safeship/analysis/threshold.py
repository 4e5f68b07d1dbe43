"""Threshold analysis: canary vs. absolute limits and vs. the baseline of the same window.

A check fails when the canary exceeds the lower of its absolute limit and
`baseline x factor + margin`. These are the plain checks of the first
versions, kept for users who want fixed limits; `evaluate` runs them.
"""

from __future__ import annotations

import math

from safeship.analysis.verdict import CheckResult, Result
from safeship.config import ErrorRateCheck, LatencyCheck
from safeship.providers.interface import VersionSample


def threshold_check(
    check: ErrorRateCheck | LatencyCheck, canary: VersionSample, baseline: VersionSample
) -> CheckResult:
    """One threshold check over a window that has enough requests."""
    if isinstance(check, ErrorRateCheck):
        return _error_rate(check, canary, baseline)
    return _latency(check, canary, baseline)


def _limit(
    baseline: float, factor: float, margin: float, ceiling: float | None
) -> tuple[float, str]:
    relative = baseline * factor + margin
    if ceiling is not None and ceiling < relative:
        return ceiling, "absolute"
    return relative, "relative"


def _error_rate(
    check: ErrorRateCheck, canary: VersionSample, baseline: VersionSample
) -> CheckResult:
    c, b = canary.error_ratio, baseline.error_ratio
    if c is None or b is None or math.isnan(c) or math.isnan(b):
        return CheckResult(
            check.name, check.type, Result.INCONCLUSIVE, "error ratio undefined (no requests)"
        )
    limit, basis = _limit(b, check.max_increase_factor, check.margin, check.max_ratio)
    details = {
        "basis": basis,
        "max_ratio": check.max_ratio,
        "max_increase_factor": check.max_increase_factor,
        "margin": check.margin,
        "canary_errors": canary.errors,
        "canary_requests": canary.requests,
        "baseline_errors": baseline.errors,
        "baseline_requests": baseline.requests,
    }
    explain = f"canary {c:.2%} vs limit {limit:.2%} " + (
        f"(baseline {b:.2%} x {check.max_increase_factor:g} + {check.margin * 100:g}pp)"
        if basis == "relative"
        else f"(absolute max; baseline {b:.2%})"
    )
    result = Result.FAIL if c > limit else Result.PASS
    return CheckResult(check.name, check.type, result, explain, c, b, limit, details)


def _latency(check: LatencyCheck, canary: VersionSample, baseline: VersionSample) -> CheckResult:
    c = histogram_quantile(check.quantile, canary.latency_buckets)
    b = histogram_quantile(check.quantile, baseline.latency_buckets)
    label = f"p{check.quantile * 100:g}"
    if c is None or b is None:
        missing = "canary" if c is None else "baseline"
        return CheckResult(
            check.name, check.type, Result.INCONCLUSIVE, f"no latency histogram for {missing}"
        )
    limit, basis = _limit(b, check.max_increase_factor, check.margin_seconds, check.max_seconds)
    details = {
        "quantile": check.quantile,
        "basis": basis,
        "max_seconds": check.max_seconds,
        "max_increase_factor": check.max_increase_factor,
        "margin_seconds": check.margin_seconds,
    }
    explain = f"canary {label} {c * 1000:.0f}ms vs limit {limit * 1000:.0f}ms " + (
        f"(baseline {b * 1000:.0f}ms x {check.max_increase_factor:g} "
        f"+ {check.margin_seconds * 1000:g}ms)"
        if basis == "relative"
        else f"(absolute max; baseline {b * 1000:.0f}ms)"
    )
    result = Result.FAIL if c > limit else Result.PASS
    return CheckResult(check.name, check.type, result, explain, c, b, limit, details)


def histogram_quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """Prometheus' `histogram_quantile` on cumulative `(le, count)` buckets.

    Linear interpolation inside the bucket holding the rank; a rank in the
    `+Inf` bucket yields the highest finite bound, as Prometheus does. None
    when there are no observations.
    """
    if len(buckets) < 2 or not buckets[-1][1] > 0:
        return None  # no observations, or no finite bucket to place them in
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound
