"""The catastrophe guard: a canary failing a large share of its requests is gone in seconds.

The analysis proper weighs every regression carefully and decides on the
policy's terms (holds, failure limits, pauses). A canary failing half its
requests needs none of that: every second it keeps its traffic hurts users.
The guard looks at every fresh figure, also during warm-up, and rolls back at
once, whatever the pause settings, when the evidence shows both

    the canary failing more than `error_ratio` of its requests (a binomial
    test on the canary's own requests), and
    its error rate more than `baseline_factor` times the baseline's (the
    errors' split between versions given their traffic, as in the sequential
    test), so that an incident hitting both versions is not blamed on it.

Each part is a CUSUM over a grid of alternatives: per grid point k,
`S_k <- max(0, S_k + log LR_k(increment))`. CUSUM is the quickest detector of
a change for a given false-alarm rate, and it does not slow down after a
healthy start (a plain likelihood ratio would first have to climb out of the
evidence of a good start). An alarm at a look means a likelihood-ratio test
started at some earlier look crossed e^h; under the guard's null each such
test crosses with probability at most e^-h (Ville's inequality), so with
`h = log(grid points x looks per hour / alpha)` the guard raises at most
`alpha` false alarms per hour of looking once a second, for a canary exactly
at its limits; a healthy canary is far below them. Pure, like all analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from safeship.analysis.sequential import Counts, split_log_ratio
from safeship.analysis.verdict import CheckResult, Result
from safeship.config import CatastropheGuard

GRID_POINTS = 8
LOOKS_PER_HOUR = 3600  # the bound assumes one look a second; fewer looks only lower it
RELATIVE_TOP = 500.0  # alternatives up to this many times the guard's baseline factor
ABSOLUTE_TOP = 0.999  # and up to this error ratio


@dataclass(frozen=True)
class GuardState:
    """CUSUM statistics per grid point, and the counts of the current run of evidence."""

    absolute: tuple[float, ...] = ()
    relative: tuple[float, ...] = ()
    run: Counts = field(default_factory=Counts)

    def for_storage(self) -> dict[str, Any]:
        return {
            "absolute": list(self.absolute),
            "relative": list(self.relative),
            "run": self.run.as_list(),
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any] | None) -> GuardState:
        if not data:
            return cls()
        return cls(
            absolute=tuple(float(v) for v in data.get("absolute", ())),
            relative=tuple(float(v) for v in data.get("relative", ())),
            run=Counts.from_list(data.get("run", [0, 0, 0, 0])),
        )


def threshold(guard: CatastropheGuard) -> float:
    """The log-evidence both parts must reach."""
    return math.log(GRID_POINTS * LOOKS_PER_HOUR / guard.alpha)


def absolute_grid(guard: CatastropheGuard) -> tuple[float, ...]:
    """Error ratios above `error_ratio`, evenly spaced in log-odds up to 99.9%."""
    low, high = _logit(guard.error_ratio), _logit(ABSOLUTE_TOP)
    step = (high - low) / GRID_POINTS
    return tuple(_expit(low + step * k) for k in range(1, GRID_POINTS + 1))


def relative_grid(guard: CatastropheGuard) -> tuple[float, ...]:
    """Error-rate ratios above `baseline_factor`, log-spaced up to 500 times it."""
    step = RELATIVE_TOP ** (1 / GRID_POINTS)
    return tuple(guard.baseline_factor * step**k for k in range(1, GRID_POINTS + 1))


def update(guard: CatastropheGuard, state: GuardState, step: Counts) -> GuardState:
    """The guard after one increment of counts."""
    absolute = state.absolute or tuple(0.0 for _ in range(GRID_POINTS))
    relative = state.relative or tuple(0.0 for _ in range(GRID_POINTS))
    n, x = step.canary_requests, step.canary_errors
    if n > 0:
        p0 = guard.error_ratio
        absolute = tuple(
            max(0.0, s + x * math.log(p / p0) + (n - x) * math.log((1 - p) / (1 - p0)))
            for s, p in zip(absolute, absolute_grid(guard), strict=True)
        )
    n_b, y = step.baseline_requests, step.baseline_errors
    if n > 0 and n_b > 0 and x + y > 0:
        null = guard.baseline_factor
        relative = tuple(
            max(0.0, s + split_log_ratio(theta, null, n, n_b, x, y))
            for s, theta in zip(relative, relative_grid(guard), strict=True)
        )
    run = Counts() if max(absolute) == 0.0 else state.run.plus(step)
    return GuardState(absolute, relative, run)


def judge(guard: CatastropheGuard, state: GuardState) -> CheckResult | None:
    """The guard's alarm, with what it saw; None while it does not fire."""
    if not guard.enabled or not state.absolute or not state.relative:
        return None
    h = threshold(guard)
    absolute, relative = max(state.absolute), max(state.relative)
    if absolute < h or relative < h:
        return None
    run = state.run
    canary = run.canary_errors / run.canary_requests if run.canary_requests else None
    baseline = run.baseline_errors / run.baseline_requests if run.baseline_requests else None
    baseline_text = "n/a" if baseline is None else f"{baseline:.2%}"
    reason = (
        f"catastrophic failure: the canary failed {run.canary_errors:.0f} of "
        f"{run.canary_requests:.0f} requests ({canary or 0:.1%}) against the baseline's "
        f"{baseline_text}; evidence that it fails more than {guard.error_ratio:.0%} of its "
        f"requests and more than x{guard.baseline_factor:g} the baseline's rate is past the "
        f"guard's limit (log-evidence {min(absolute, relative):.1f} >= {h:.1f}); rolled back at "
        "once, whatever the hold, warm-up or pause settings"
    )
    details = {
        "log_evidence_absolute": absolute,
        "log_evidence_relative": relative,
        "log_threshold": h,
        "error_ratio": guard.error_ratio,
        "baseline_factor": guard.baseline_factor,
        "alpha_per_hour": guard.alpha,
        "canary_errors": run.canary_errors,
        "canary_requests": run.canary_requests,
        "baseline_errors": run.baseline_errors,
        "baseline_requests": run.baseline_requests,
    }
    return CheckResult(
        name="catastrophe_guard",
        kind="catastrophe_guard",
        result=Result.FAIL,
        reason=reason,
        canary=canary,
        baseline=baseline,
        limit=guard.error_ratio,
        details=details,
    )


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(z: float) -> float:
    return 1 / (1 + math.exp(-z))
