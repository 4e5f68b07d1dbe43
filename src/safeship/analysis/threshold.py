"""Threshold analysis: canary vs. absolute limits and vs. the baseline of the same window.

A check fails when the canary exceeds the lower of its absolute limit and
`baseline x factor + margin`. Below `min_requests` for either version every
check is inconclusive: a verdict on a handful of requests is noise.
"""

from __future__ import annotations

import math

from safeship.analysis.verdict import CheckResult, Result, Verdict, combine
from safeship.config import CanaryStrategy, Check, ErrorRateCheck, LatencyCheck
from safeship.providers.interface import Measurement, VersionSample


def evaluate(measurement: Measurement, strategy: CanaryStrategy) -> Verdict:
    """Judge one window of canary vs. baseline with the strategy's checks."""
    canary, baseline = measurement.canary, measurement.baseline
    short = _short_of_data(canary, baseline, strategy.min_requests)
    if short is not None:
        checks = tuple(
            CheckResult(name=c.name, kind=c.type, result=Result.INCONCLUSIVE, reason=short)
            for c in strategy.checks
        )
    else:
        checks = tuple(_run_check(c, canary, baseline) for c in strategy.checks)
    result = combine(checks)
    return Verdict(
        result=result,
        reason=_summary(result, checks),
        window=measurement.window,
        checks=checks,
        canary_requests=canary.requests,
        baseline_requests=baseline.requests,
        canary_errors=canary.errors,
        baseline_errors=baseline.errors,
        queries=dict(measurement.queries),
    )


def _short_of_data(canary: VersionSample, baseline: VersionSample, minimum: int) -> str | None:
    lacking = [
        f"{name} {sample.requests:.0f} < {minimum} requests"
        for name, sample in (("canary", canary), ("baseline", baseline))
        if not sample.requests >= minimum  # NaN counts as lacking
    ]
    return f"not enough data: {', '.join(lacking)}" if lacking else None


def _summary(result: Result, checks: tuple[CheckResult, ...]) -> str:
    chosen = [c for c in checks if c.result is result] or list(checks)
    return "; ".join(f"{c.name}: {c.reason}" for c in chosen) or "no checks configured"


def _run_check(check: Check, canary: VersionSample, baseline: VersionSample) -> CheckResult:
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
