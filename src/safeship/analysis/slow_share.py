"""An anytime-valid test of whether the canary serves more slow requests than the baseline.

Call a request slower than a bound b a *slow event*. If the canary's
latencies are distributed like the baseline's, each slow event of a look's
increment fell on the canary with probability equal to its share of the
requests, exactly as each error does in the sequential error-rate test. The
null here is a tolerance wider: for every bound, the canary's share of
requests slower than it is at most (1 + `tolerance`) times the baseline's.
The alternatives say that, for some bound, it is theta times, theta beyond.

A mixture over the histogram's bounds and a grid of theta of likelihood
ratios, multiplied over looks, is then a test supermartingale (binomial given
the counts; the exact split of a fixed number of events is hypergeometric,
less dispersed, which only lowers the ratio's expectation), so by Ville's
inequality its running maximum passes 1/alpha with probability at most alpha
however often it is looked at: an A/A rollout looked at every interval (or
every second) keeps its false-rollback rate under alpha, which re-running a
fixed-sample Mann-Whitney at every look does not.

It compares probability mass bucket by bucket, so latencies that share a
bucket (all of them, in a Prometheus histogram) tie without harm, and a small
share of very slow requests (a tail below p99: 1% of requests at 5 s) shows
at the bounds beyond the baseline's tail, where the baseline has almost no
events. With `direction: decrease` the events are requests at or faster than
a bound (the canary getting faster is the harm); `either` weighs both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safeship.analysis.sequential import Counts, split_log_ratio
from safeship.config import LatencyJudgeCheck
from safeship.sample_service import LATENCY_BUCKETS

GRID_POINTS = 8
GRID_TOP = 16.0  # alternatives up to 16 times the tolerated ratio


@dataclass(frozen=True)
class Family:
    """The evidence for one kind of event ("slower than" or "at most") at one bound."""

    side: str  # "slow" (slower than the bound) or "fast" (at or below it)
    bound: float
    log_ratios: tuple[float, ...]  # per grid point
    tally: Counts  # requests, and events among them (in the `errors` fields), per version

    @property
    def log_evidence(self) -> float:
        return _log_mean_exp(self.log_ratios)


@dataclass(frozen=True)
class SlowShareEvidence:
    """The test's state: a family per (side, bound), and the best evidence seen so far."""

    families: tuple[Family, ...] = ()
    max_log_evidence: float = 0.0
    log_evidence: float = 0.0  # log of the mixture's current value (1 before any event)

    def for_storage(self) -> dict[str, Any]:
        return {
            "families": [
                {
                    "side": f.side,
                    "bound": f.bound,
                    "log_ratios": list(f.log_ratios),
                    "tally": f.tally.as_list(),
                }
                for f in self.families
            ],
            "max_log_evidence": self.max_log_evidence,
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any] | None) -> SlowShareEvidence:
        if not data:
            return cls()
        families = tuple(
            Family(
                side=str(f["side"]),
                bound=float(f["bound"]),
                log_ratios=tuple(float(v) for v in f["log_ratios"]),
                tally=Counts.from_list(f["tally"]),
            )
            for f in data.get("families", ())
        )
        return cls(families, float(data.get("max_log_evidence", 0.0)), _mixture(families))


def grid(check: LatencyJudgeCheck) -> tuple[float, ...]:
    """Ratios of shares the mixture weighs: log-spaced, beyond the tolerated 1 + tolerance."""
    null = 1.0 + check.tolerance
    step = GRID_TOP ** (1 / GRID_POINTS)
    return tuple(null * step**k for k in range(1, GRID_POINTS + 1))


def update(
    check: LatencyJudgeCheck,
    evidence: SlowShareEvidence,
    canary: Sequence[tuple[float, float]],
    baseline: Sequence[tuple[float, float]],
) -> SlowShareEvidence:
    """The evidence after one increment of cumulative buckets `(le, count)` per version.

    The bounds are fixed by the first increment that has both versions'
    buckets (they come from the same histogram); later increments count at
    those bounds only, so the set of tests never depends on what was seen.
    """
    canary_at, baseline_at = dict(canary), dict(baseline)
    n_c, n_b = canary_at.get(math.inf, 0.0), baseline_at.get(math.inf, 0.0)
    families = evidence.families or _families(check, canary_at, baseline_at)
    if not families or n_c <= 0 or n_b <= 0:
        return SlowShareEvidence(families, evidence.max_log_evidence, evidence.log_evidence)
    null = 1.0 + check.tolerance
    thetas = grid(check)
    updated = []
    for family in families:
        below_c = canary_at.get(family.bound, 0.0)
        below_b = baseline_at.get(family.bound, 0.0)
        if family.side == "slow":
            x, y = n_c - below_c, n_b - below_b
        else:
            x, y = below_c, below_b
        x, y = max(0.0, x), max(0.0, y)
        ratios = family.log_ratios
        if x + y > 0:
            ratios = tuple(
                r + split_log_ratio(theta, null, n_c, n_b, x, y)
                for r, theta in zip(ratios, thetas, strict=True)
            )
        updated.append(
            Family(family.side, family.bound, ratios, family.tally.plus(Counts(n_c, x, n_b, y)))
        )
    current = _mixture(tuple(updated))
    return SlowShareEvidence(tuple(updated), max(evidence.max_log_evidence, current), current)


def strongest(evidence: SlowShareEvidence) -> Family | None:
    """The family with the most evidence against the canary, to explain a verdict with."""
    if not evidence.families:
        return None
    return max(evidence.families, key=lambda f: f.log_evidence)


def buckets_of_samples(samples: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Raw durations binned at the sample service's bounds, so they are tested the same way."""
    finite = sorted(v for v in samples if math.isfinite(v))
    cumulative = []
    index = 0
    for bound in LATENCY_BUCKETS:
        while index < len(finite) and finite[index] <= bound:
            index += 1
        cumulative.append((bound, float(index)))
    return (*cumulative, (math.inf, float(len(finite))))


def _families(
    check: LatencyJudgeCheck, canary: dict[float, float], baseline: dict[float, float]
) -> tuple[Family, ...]:
    bounds = sorted(b for b in canary if math.isfinite(b) and b in baseline)
    if not bounds or math.inf not in canary or math.inf not in baseline:
        return ()
    sides = {"increase": ("slow",), "decrease": ("fast",), "either": ("slow", "fast")}
    zero = tuple(0.0 for _ in range(GRID_POINTS))
    return tuple(
        Family(side, bound, zero, Counts()) for side in sides[check.direction] for bound in bounds
    )


def _mixture(families: tuple[Family, ...]) -> float:
    """log of the mean over every family's grid points (all weighted alike)."""
    values = [r for f in families for r in f.log_ratios]
    return _log_mean_exp(values) if values else 0.0


def _log_mean_exp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(math.fsum(math.exp(v - top) for v in values) / len(values))
