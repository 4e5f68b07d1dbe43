"""An anytime-valid sequential test of canary vs. baseline error rates.

Given how many requests each version served in an interval, each error that
happened in it fell on the canary with probability
`pi(theta) = theta * n_c / (theta * n_c + n_b)`, where theta is the ratio of the
canary's error rate to the baseline's. The likelihood ratio of theta against
theta = 1, multiplied over intervals, is a nonnegative martingale when the
canary is no worse (a supermartingale when it is better), so by Ville's
inequality the chance it *ever* exceeds 1/alpha is at most alpha: the test may
be looked at every interval, forever, and its false-rollback rate stays under
alpha. A mixture over a grid of alternatives (theta from 1 + `detect_increase`
up to x10) adapts to the size of the regression, so a tenfold one is caught
after a handful of errors and a small one still eventually. The grid's
weights fall as theta^-0.3: small regressions, the common ones, weigh a
little more, and a huge one still passes the threshold in a few errors
(the catastrophe guard is there for those). Conditioning on
where errors fell makes a baseline error rate of 0 work, and makes the test
indifferent to traffic shifting between steps.

The mirror test (null: canary worse by `margin`; alternatives below it) shows
that a canary is not worse than tolerated, which lets a step advance early.

Everything here is pure: the evidence so far is a small JSON-able state that
the rollout stores with its other state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from safeship.analysis.verdict import CheckResult, Result
from safeship.config import SequentialErrorRateCheck

GRID_POINTS = 10
LIKELY = 0.75
"""Harm is likely from evidence (1/alpha)^LIKELY on (34 at alpha 0.9%): if it is still that
strong after twice the hold, `limits.on_suspected_harm` acts. Rare for a healthy canary,
so this policy adds little to the test's own false-rollback rate."""
SUSPICION = 2.0
"""Evidence (likelihood ratio) from which harm is suspected: the data favour harm two to one.
It holds a step for up to one more hold, so a mild regression is judged at the low weight
where each of its errors says most; it never rolls back by itself."""
GRID_TOP = 10.0  # the largest error-rate ratio the mixture weighs (larger ones pass it anyway)
HARM_PRIOR_POWER = -0.3
"""The harm mixture weighs theta in proportion to theta^HARM_PRIOR_POWER (normalised): a
mild tilt towards small ratios, measured in `make bench` to catch x3 and x10 regressions with
fewer failed requests than equal weights, at the same false-rollback rate."""
SAFE_GRID_BOTTOM = 0.1


@dataclass(frozen=True)
class Counts:
    """Requests and errors of both versions (an interval's increment, or totals).

    The latency test counts slow requests in the `errors` fields: any event among
    requests whose split between versions is tested.
    """

    canary_requests: float = 0.0
    canary_errors: float = 0.0
    baseline_requests: float = 0.0
    baseline_errors: float = 0.0

    def plus(self, other: Counts) -> Counts:
        return Counts(
            self.canary_requests + other.canary_requests,
            self.canary_errors + other.canary_errors,
            self.baseline_requests + other.baseline_requests,
            self.baseline_errors + other.baseline_errors,
        )

    def minus(self, other: Counts) -> Counts:
        """The increment since `other`; a counter that went down counts as nothing new."""
        return Counts(
            max(0.0, self.canary_requests - other.canary_requests),
            max(0.0, self.canary_errors - other.canary_errors),
            max(0.0, self.baseline_requests - other.baseline_requests),
            max(0.0, self.baseline_errors - other.baseline_errors),
        )

    def as_list(self) -> list[float]:
        return [
            self.canary_requests,
            self.canary_errors,
            self.baseline_requests,
            self.baseline_errors,
        ]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> Counts:
        return cls(*(float(v) for v in values))


@dataclass(frozen=True)
class Evidence:
    """The test's state: log likelihood ratios per grid point, and the rollout's totals."""

    harm: tuple[float, ...] = ()
    safe: tuple[float, ...] = ()
    max_log_harm: float = 0.0
    totals: Counts = field(default_factory=Counts)

    def for_storage(self) -> dict[str, Any]:
        return {
            "harm": list(self.harm),
            "safe": list(self.safe),
            "max_log_harm": self.max_log_harm,
            "totals": self.totals.as_list(),
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Evidence:
        """The stored evidence; grid values that are not finite numbers are dropped (the grid
        restarts, see `_on_grid`), and a running maximum that is not one counts as none."""
        max_log_harm = _finite_or_none(data.get("max_log_harm", 0.0))
        return cls(
            harm=_finite_values(data.get("harm", ())),
            safe=_finite_values(data.get("safe", ())),
            max_log_harm=0.0 if max_log_harm is None else max_log_harm,
            totals=Counts.from_list(data.get("totals", [0, 0, 0, 0])),
        )


def _finite_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _finite_values(values: object) -> tuple[float, ...]:
    """All the values as floats, or () when any is not a finite number."""
    if not isinstance(values, list | tuple):
        return ()
    floats = [_finite_or_none(v) for v in values]
    return () if any(f is None for f in floats) else tuple(f for f in floats if f is not None)


def _on_grid(values: tuple[float, ...], grid: tuple[float, ...]) -> tuple[float, ...]:
    """Stored log ratios if they belong to this grid, else a fresh start (all 0).

    A grid changes with `detect_increase` or `margin`, or with safeship itself; the old
    values are ratios against other alternatives, so they cannot be carried over. The
    running maximum (`max_log_harm`) is kept: evidence already seen still counts.
    """
    return values if len(values) == len(grid) else tuple(0.0 for _ in grid)


def harm_grid(check: SequentialErrorRateCheck) -> tuple[float, ...]:
    """Error-rate ratios the harm test weighs: log-spaced, 1 + detect_increase to x10."""
    low = 1.0 + check.detect_increase
    if low >= GRID_TOP:
        return (low,)
    step = (GRID_TOP / low) ** (1 / (GRID_POINTS - 1))
    return tuple(low * step**k for k in range(GRID_POINTS))


def safe_grid(check: SequentialErrorRateCheck) -> tuple[float, ...]:
    """Ratios below the tolerated one (1 + margin), down to 0.1, for the not-worse test."""
    top = 1.0 + check.margin
    step = (top / SAFE_GRID_BOTTOM) ** (1 / GRID_POINTS)
    return tuple(top / step**k for k in range(1, GRID_POINTS + 1))


def split_log_ratio(theta: float, null: float, n_c: float, n_b: float, x: float, y: float) -> float:
    """log of P(x of the x+y events on the canary | theta) / the same under `null`.

    An event falls on the canary with probability `theta n_c / (theta n_c + n_b)`.
    Computed from logarithms of the shares, so a version with a vanishing share of
    the traffic (a probability that rounds to 0 or 1) still gives a finite answer.
    """
    log_alt = _log_add(math.log(theta) + math.log(n_c), math.log(n_b))
    log_null = _log_add(math.log(null) + math.log(n_c), math.log(n_b))
    canary_side = math.log(theta / null) - log_alt + log_null
    baseline_side = log_null - log_alt
    return x * canary_side + y * baseline_side


def _log_add(a: float, b: float) -> float:
    """log(e^a + e^b) without forming either: no overflow near the largest float."""
    top, low = max(a, b), min(a, b)
    return top + math.log1p(math.exp(low - top))


def harm_log_weights(thetas: Sequence[float]) -> tuple[float, ...]:
    """log of each ratio's prior weight in the harm mixture (they sum to 1)."""
    raw = [HARM_PRIOR_POWER * math.log(t) for t in thetas]
    norm = _log_mean_exp(raw) + math.log(len(raw))
    return tuple(r - norm for r in raw)


def log_harm_evidence(check: SequentialErrorRateCheck, harm: Sequence[float]) -> float:
    """log of the harm mixture: sum of weight x likelihood ratio, computed in log space."""
    grid = harm_grid(check)
    if len(harm) != len(grid):
        return 0.0  # no evidence on this grid yet (see `_on_grid`)
    weighted = [h + w for h, w in zip(harm, harm_log_weights(grid), strict=True)]
    top = max(weighted)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in weighted))


def _log_mean_exp(values: Sequence[float]) -> float:
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def update(check: SequentialErrorRateCheck, evidence: Evidence, step: Counts) -> Evidence:
    """Evidence after one interval's counts (no errors, or one version idle: no information)."""
    harm_thetas, safe_thetas = harm_grid(check), safe_grid(check)
    harm = _on_grid(evidence.harm, harm_thetas)
    safe = _on_grid(evidence.safe, safe_thetas)
    n_c, n_b = step.canary_requests, step.baseline_requests
    x, y = step.canary_errors, step.baseline_errors
    finite = all(math.isfinite(v) for v in (n_c, n_b, x, y))
    if finite and n_c > 0 and n_b > 0 and x >= 0 and y >= 0 and x + y > 0:
        harm = tuple(
            h + split_log_ratio(t, 1.0, n_c, n_b, x, y)
            for h, t in zip(harm, harm_thetas, strict=True)
        )
        null = 1.0 + check.margin
        safe = tuple(
            s + split_log_ratio(t, null, n_c, n_b, x, y)
            for s, t in zip(safe, safe_thetas, strict=True)
        )
    log_harm = log_harm_evidence(check, harm)
    return Evidence(
        harm=harm,
        safe=safe,
        max_log_harm=max(evidence.max_log_harm, log_harm),
        totals=evidence.totals.plus(step),
    )


@dataclass(frozen=True)
class SequentialJudgement:
    """One look at the evidence: the check result (its p-value in the details), early advance."""

    result: CheckResult
    shown_not_worse: bool
    harm_suspected: bool = False  # evidence of at least SUSPICION: hold the step, do not advance
    harm_likely: bool = False  # evidence past (1/alpha)^LIKELY: not proof, yet too much


def judge(
    check: SequentialErrorRateCheck, evidence: Evidence, *, enough_data: bool, short_reason: str
) -> SequentialJudgement:
    """Judge the evidence at level alpha (the caller corrects for several checks)."""
    log_harm = log_harm_evidence(check, evidence.harm)
    log_safe = _log_mean_exp(evidence.safe) if len(evidence.safe) == len(safe_grid(check)) else 0.0
    threshold = math.log(1 / check.alpha)
    # The running maximum makes 1/e an anytime-valid p-value (Ville's inequality).
    p_value = math.exp(min(0.0, -evidence.max_log_harm))
    shown_not_worse = log_safe >= threshold
    harm_suspected = log_harm >= math.log(SUSPICION)
    harm_likely = log_harm >= threshold * LIKELY
    t = evidence.totals
    ratio = _ratio_estimate(t)
    details: dict[str, Any] = {
        "alpha": check.alpha,
        "e_value": _bounded_exp(log_harm),
        "e_threshold": 1 / check.alpha,
        "p_value": p_value,
        "e_value_not_worse": _bounded_exp(log_safe),
        "shown_not_worse": shown_not_worse,
        "harm_suspected": harm_suspected,
        "harm_likely": harm_likely,
        "ratio_estimate": ratio,
        "detect_increase": check.detect_increase,
        "margin": check.margin,
        "canary_errors": t.canary_errors,
        "canary_requests": t.canary_requests,
        "baseline_errors": t.baseline_errors,
        "baseline_requests": t.baseline_requests,
    }
    canary_rate = t.canary_errors / t.canary_requests if t.canary_requests else None
    baseline_rate = t.baseline_errors / t.baseline_requests if t.baseline_requests else None
    counts = (
        f"canary {t.canary_errors:.0f}/{t.canary_requests:.0f} errors, baseline "
        f"{t.baseline_errors:.0f}/{t.baseline_requests:.0f}"
    )
    ratio_text = "n/a" if ratio is None else ("inf" if math.isinf(ratio) else f"{ratio:.2f}")
    if log_harm >= threshold:
        reason = (
            f"canary error rate higher than baseline: evidence {details['e_value']:.3g} >= "
            f"{1 / check.alpha:.3g} (1/alpha), ratio ~{ratio_text} ({counts})"
        )
        return SequentialJudgement(
            CheckResult(
                check.name,
                check.type,
                Result.FAIL,
                reason,
                canary_rate,
                baseline_rate,
                None,
                details,
            ),
            False,
            harm_suspected=True,
            harm_likely=True,
        )
    if not enough_data:
        return SequentialJudgement(
            CheckResult(check.name, check.type, Result.INCONCLUSIVE, short_reason, details=details),
            False,
        )
    verdict = (
        f"shown not worse than +{check.margin:.0%}"
        if shown_not_worse
        else "harm likely, not shown"
        if harm_likely
        else "harm suspected, not shown"
        if harm_suspected
        else "no evidence of harm"
    )
    reason = (
        f"{verdict}: evidence {details['e_value']:.3g} < {1 / check.alpha:.3g}, "
        f"ratio ~{ratio_text} ({counts})"
    )
    return SequentialJudgement(
        CheckResult(
            check.name, check.type, Result.PASS, reason, canary_rate, baseline_rate, None, details
        ),
        shown_not_worse,
        harm_suspected,
        harm_likely,
    )


def _ratio_estimate(t: Counts) -> float | None:
    """Canary error rate / baseline error rate over the rollout so far."""
    if not t.canary_requests or not t.baseline_requests:
        return None
    canary, baseline = t.canary_errors / t.canary_requests, t.baseline_errors / t.baseline_requests
    if baseline == 0:
        return math.inf if canary > 0 else None
    return canary / baseline


def _bounded_exp(value: float) -> float:
    return math.exp(min(value, 700.0))
