"""Latency judge: canary vs. baseline latency distributions, as Kayenta's ACA judge does it.

A limit on one quantile misses a shift of the whole distribution and trips on
noise in one bucket. A Mann-Whitney U test asks whether canary requests tend to
be slower than the baseline's, the Hodges-Lehmann estimate says by how much and
its confidence interval how surely; the mean ratio says whether that matters.

Samples are weighted values, so a Prometheus histogram (a few dozen buckets
holding millions of requests) is judged without expanding its counts, and raw
durations keep their ties. Everything is deterministic: no resampling, and no
jitter to break ties (Kayenta adds Gaussian noise to constant samples; the tie
correction below makes that unnecessary).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate, pairwise
from statistics import NormalDist
from typing import Any

from safeship.analysis.slow_share import Family, SlowShareEvidence, strongest
from safeship.analysis.threshold import histogram_quantile
from safeship.analysis.verdict import CheckResult, Result
from safeship.config import LatencyJudgeCheck
from safeship.providers.interface import VersionSample

TAIL_OBSERVATIONS = 10
"""Observations needed beyond a tail quantile before it is judged (p99: 1,000 samples)."""

_SQRT2 = math.sqrt(2.0)


class Classification(StrEnum):
    """Kayenta's metric classes."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"


@dataclass(frozen=True)
class Observations:
    """A sample as strictly ascending distinct `values`, each with a positive weight.

    Weights let one type carry raw durations (duplicates merged) and histogram
    buckets (one representative value per bucket with its count), and keep the
    statistics below proportional to distinct values, not to requests.
    """

    values: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values or len(self.values) != len(self.counts):
            raise ValueError("observations need at least one value and one count per value")
        if any(b <= a for a, b in pairwise(self.values)):
            raise ValueError("observation values must be strictly ascending")
        if not all(c > 0 for c in self.counts):
            raise ValueError("observation counts must be positive")

    @classmethod
    def of(cls, weighted: Iterable[tuple[float, float]]) -> Observations | None:
        """Merge `(value, weight)` pairs; None when no finite value has a positive weight."""
        merged: dict[float, float] = {}
        for value, weight in weighted:
            if math.isfinite(value) and weight > 0:  # a NaN weight is no observation either
                merged[value] = merged.get(value, 0.0) + weight
        if not merged:
            return None
        values = tuple(sorted(merged))
        return cls(values, tuple(merged[v] for v in values))

    @property
    def total(self) -> float:
        return math.fsum(self.counts)

    @property
    def mean(self) -> float:
        return math.fsum(v * c for v, c in zip(self.values, self.counts, strict=True)) / self.total


def observations(sample: VersionSample) -> Observations | None:
    """What the judge compares: raw durations when the provider has them, else the histogram.

    A bucket stands at its midpoint (the first one starting at 0, as Prometheus
    assumes for latencies); the `+Inf` bucket has no midpoint and stands at the
    last finite bound, understating it exactly as `histogram_quantile` does.
    None when there is nothing to compare.
    """
    if sample.latency_samples:
        return Observations.of((value, 1.0) for value in sample.latency_samples)
    if len(sample.latency_buckets) < 2:
        return None  # no finite bound to place observations at
    return Observations.of(_bucket_weights(sample.latency_buckets))


def _bucket_weights(buckets: tuple[tuple[float, float], ...]) -> Iterator[tuple[float, float]]:
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        # Halves first: the sum of two bounds near the float limit would overflow.
        yield (lower if math.isinf(bound) else lower / 2 + bound / 2), cumulative - below
        # A cumulative count that dips (a scrape racing a reset) must not count twice.
        lower, below = bound, max(below, cumulative)


@dataclass(frozen=True)
class MannWhitney:
    """A Mann-Whitney U test of canary vs. baseline, with the shift it estimates.

    `u` is the canary's statistic: the weight of (canary, baseline) pairs where
    the canary is slower, ties counting half, so `u > n_canary * n_baseline / 2`
    means the canary tends to be slower. `z` is signed the same way, with tie and
    continuity corrections; `p_value` is two-sided. `hl_shift` (canary - baseline)
    is the Hodges-Lehmann estimate and `[ci_low, ci_high]` its distribution-free
    interval at `confidence`. With ties an end can fall on an atom, a difference
    shared by many pairs (zero-inflated samples, latencies in one histogram
    bucket): the test then decides whether the atom itself is in the interval,
    and `low_open` / `high_open` say it is not (the test rejects that shift).
    """

    u: float
    z: float
    p_value: float
    n_canary: float
    n_baseline: float
    hl_shift: float
    ci_low: float
    ci_high: float
    confidence: float
    mean_canary: float
    mean_baseline: float
    low_open: bool = False
    high_open: bool = False

    @property
    def cles(self) -> float:
        """The common-language effect size: the share of pairs where the canary is slower."""
        pairs = self.n_canary * self.n_baseline
        return self.u / pairs if pairs else 0.5


def mann_whitney(canary: Observations, baseline: Observations, confidence: float) -> MannWhitney:
    """Test whether canary and baseline come from the same distribution, and estimate the shift.

    The normal approximation is what large request counts need (and what R's
    `wilcox.test(exact=FALSE, correct=TRUE, conf.int=TRUE)` and Kayenta use).
    The interval holds the shifts d for which the canary moved back by d would
    not be rejected: its ends are the pairwise differences where the
    standardized U crosses ±z at (1 + confidence) / 2.
    """
    grid = _Differences(canary, baseline)
    m, n = canary.total, baseline.total
    half = grid.total / 2
    within = _tie_sum(canary.counts) + _tie_sum(baseline.counts)
    u, z = _standardized_at(grid, canary, baseline, 0.0, within)
    # Away from the differences themselves the shifted samples tie only within
    # themselves, so the interval's ends use the within-sample correction alone...
    quantile = NormalDist().inv_cdf((1 + confidence) / 2)
    reach = quantile * _sigma(m, n, within) + 0.5
    ci_low = grid.smallest_reaching(half - reach, False)
    ci_high = grid.smallest_reaching(half + reach, True)
    # ...but at an end that is itself a difference many pairs share, the shifted
    # samples tie across too: the test at that very shift says whether it is in.
    _, z_low = _standardized_at(grid, canary, baseline, ci_low, within)
    _, z_high = _standardized_at(grid, canary, baseline, ci_high, within)
    return MannWhitney(
        u=u,
        z=z,
        p_value=min(1.0, math.erfc(abs(z) / _SQRT2)),
        n_canary=m,
        n_baseline=n,
        hl_shift=(grid.smallest_reaching(half, False) + grid.smallest_reaching(half, True)) / 2,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        mean_canary=canary.mean,
        mean_baseline=baseline.mean,
        low_open=z_low >= quantile,
        high_open=z_high <= -quantile,
    )


def _standardized_at(
    grid: _Differences,
    canary: Observations,
    baseline: Observations,
    shift: float,
    within: float,
) -> tuple[float, float]:
    """U and its standardized value for the canary moved back by `shift`, ties included.

    Pairs whose difference is exactly `shift` tie and count half; the tie groups
    they merge (canary value v with baseline value v - shift) correct the variance.
    """
    at_or_below, below = grid.weight_upto(shift), grid.weight_upto(_before(shift))
    u = grid.total - at_or_below + (at_or_below - below) / 2
    across = 0.0
    for value, a in zip(canary.values, canary.counts, strict=True):
        b = _count_where(baseline, value, shift)
        if b:
            across += 3 * a * b * (a + b)  # merging groups of sizes a and b adds 3ab(a + b)
    sigma = _sigma(canary.total, baseline.total, within + across)
    return u, _standardize(u - grid.total / 2, sigma)


def _count_where(baseline: Observations, value: float, shift: float) -> float:
    """The baseline count at the value w with `value - w == shift` (as the grid computes it)."""
    values = baseline.values
    # value - w is decreasing in w, so bisect on the negated difference.
    index = bisect_left(values, True, key=lambda w: value - w <= shift)
    if index < len(values) and value - values[index] == shift:
        return baseline.counts[index]
    return 0.0


def _tie_sum(counts: tuple[float, ...]) -> float:
    return math.fsum(c**3 - c for c in counts)


def _sigma(m: float, n: float, ties: float) -> float:
    size = m + n
    if size <= 1:
        return 0.0  # fractional counts from rate() can total less than two observations
    variance = m * n / 12 * (size + 1 - ties / (size * (size - 1)))
    return math.sqrt(max(variance, 0.0))


def _standardize(deviation: float, sigma: float) -> float:
    """The continuity correction shrinks |U - mn/2| by 1/2 but never flips its sign."""
    if sigma == 0:
        return 0.0  # every observation tied: no evidence either way
    return math.copysign(max(abs(deviation) - 0.5, 0.0), deviation) / sigma


def _before(x: float) -> float:
    """The float just below x: `d <= _before(x)` is `d < x` for floats."""
    return math.nextafter(x, -math.inf)


class _Differences:
    """The differences canary_i - baseline_j, weighted a_i * b_j, never materialised.

    Row i runs over the baseline in descending order, so every row and every
    column ascends; a weighted order statistic of that p x q grid is found by
    selection (Johnson & Mizoguchi) in O((p + q) log pq) time, which keeps raw
    samples with thousands of distinct values affordable. All comparisons use
    the same float expression `x - y`, whose rounding is monotone, so the grid's
    order is exact.
    """

    def __init__(self, canary: Observations, baseline: Observations) -> None:
        self.x = canary.values
        self.a = canary.counts
        self.y = baseline.values[::-1]
        self.b_upto = tuple(accumulate(baseline.counts[::-1], initial=0.0))
        self.total = self.weight([len(self.y)] * len(self.x))

    def positions(self, limit: float) -> list[int]:
        """Per row, how many differences are <= limit (rows shrink as x grows)."""
        x, y, width = self.x, self.y, len(self.y)
        found = [0] * len(x)
        j = 0
        for i in range(len(x) - 1, -1, -1):
            xi = x[i]
            while j < width and xi - y[j] <= limit:
                j += 1
            found[i] = j
        return found

    def weight(self, positions: list[int]) -> float:
        return math.fsum(a * self.b_upto[k] for a, k in zip(self.a, positions, strict=True))

    def weight_upto(self, limit: float) -> float:
        return self.weight(self.positions(limit))

    def smallest_reaching(self, target: float, strict: bool) -> float:
        """The smallest difference d whose weight at or below d is >= target (> when strict).

        Targets beyond either end give the extreme difference, as R's
        `wilcox.test` does: small samples cannot bound the shift any tighter.
        """
        if target < 0 or (target == 0 and not strict):
            return self.x[0] - self.y[0]
        if target > self.total or (target == self.total and strict):
            return self.x[-1] - self.y[-1]
        low, high = [0] * len(self.x), [len(self.y)] * len(self.x)  # candidate columns per row
        while True:
            pivot = self._pivot(low, high)
            upto = self.positions(pivot)
            if not _reaches(self.weight(upto), target, strict):
                low = [max(lo, k) for lo, k in zip(low, upto, strict=True)]
                continue
            under = self.positions(_before(pivot))
            if not _reaches(self.weight(under), target, strict):
                return pivot
            high = [min(hi, k) for hi, k in zip(high, under, strict=True)]

    def _pivot(self, low: list[int], high: list[int]) -> float:
        """The weighted median of the rows' middle candidates.

        At least half the candidates lie in rows whose middle is on each side
        of it, so each round discards a quarter of them: O(log pq) rounds.
        """
        middles = sorted(
            (self.x[i] - self.y[(lo + hi) // 2], hi - lo)
            for i, (lo, hi) in enumerate(zip(low, high, strict=True))
            if hi > lo
        )
        seen = list(accumulate(width for _, width in middles))
        return middles[bisect_left(seen, seen[-1] / 2)][0]


def _reaches(weight: float, target: float, strict: bool) -> bool:
    return weight > target if strict else weight >= target


_HARMFUL = {
    "increase": frozenset({Classification.HIGH}),
    "decrease": frozenset({Classification.LOW}),
    "either": frozenset({Classification.HIGH, Classification.LOW}),
}


def judge_latency(
    check: LatencyJudgeCheck, canary: VersionSample, baseline: VersionSample
) -> tuple[CheckResult, float | None]:
    """Judge canary latencies against the baseline's over the same window.

    Returns the check's result and the log p-value of the harmful direction for
    the caller's multiple-testing correction (None when nothing was tested).
    That p-value is the one-sided one doubled, so it is on the scale of the
    two-sided interval: below 1 - confidence about when the interval excludes
    0 on the harmful side, and near 1 when the canary moved the harmless way.
    It is kept as a logarithm because a large shift's p-value underflows to 0.
    """
    canary_obs, baseline_obs = observations(canary), observations(baseline)
    if canary_obs is None or baseline_obs is None:
        missing = " and ".join(
            name
            for name, obs in (("canary", canary_obs), ("baseline", baseline_obs))
            if obs is None
        )
        result = CheckResult(
            check.name,
            check.type,
            Result.INCONCLUSIVE,
            f"no latency observations for {missing}",
            details={"classification": Classification.NODATA.value},
        )
        return result, None

    test = mann_whitney(canary_obs, baseline_obs, check.confidence)
    ratio = _ratio(test.mean_canary, test.mean_baseline)
    classification = _classify(test, ratio, check.tolerance)
    canary_tail = _tail(canary, check.tail_quantile)
    baseline_tail = _tail(baseline, check.tail_quantile)
    tail_ratio = (
        None if canary_tail is None or baseline_tail is None else _ratio(canary_tail, baseline_tail)
    )
    # A tail quantile from a handful of samples is one slow request (a GC pause, a cold
    # cache): judge it only with enough observations beyond it on both sides.
    tail_samples = TAIL_OBSERVATIONS / (1 - check.tail_quantile)
    tail_judged = min(test.n_canary, test.n_baseline) >= tail_samples
    tail_blown = (
        tail_judged
        and check.max_tail_ratio is not None
        and tail_ratio is not None
        and tail_ratio > check.max_tail_ratio
    )
    failed = classification in _HARMFUL[check.direction] or tail_blown

    bucketed = not (canary.latency_samples and baseline.latency_samples)
    # From a histogram every figure is a bucket estimate (a bucket stands at its
    # midpoint): said so, so nobody reads "175ms" as a measured mean.
    basis = "bucket midpoints" if bucketed else "raw samples"
    reason = (
        f"Mann-Whitney on {basis}: canary {_ms(test.mean_canary)} vs baseline "
        f"{_ms(test.mean_baseline)} mean (x{ratio:.2f}, tolerance {check.tolerance * 100:g}%): "
        f"shift {_ms(test.hl_shift, signed=True)} "
        f"[{_ms(test.ci_low, unit='')}, {_ms(test.ci_high, unit='')}] "
        f"at {check.confidence * 100:g}%{' (bucket estimates)' if bucketed else ''}, "
        f"p={test.p_value:.2g} -> {classification.value}"
    )
    if tail_blown:
        reason += (
            f"; p{check.tail_quantile * 100:g} {_ms(canary_tail)} is x{tail_ratio:.2f} "
            f"the baseline's {_ms(baseline_tail)} (max x{check.max_tail_ratio:g})"
        )
    details: dict[str, Any] = {
        "u": test.u,
        "z": test.z,
        "p_value": test.p_value,
        "hl_shift": test.hl_shift,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "confidence": test.confidence,
        "mean_ratio": ratio,
        "tolerance": check.tolerance,
        "direction": check.direction,
        "n_canary": test.n_canary,
        "n_baseline": test.n_baseline,
        "tail_quantile": check.tail_quantile,
        "canary_tail": canary_tail,
        "baseline_tail": baseline_tail,
        "tail_ratio": tail_ratio,
        "max_tail_ratio": check.max_tail_ratio,
        "tail_judged": tail_judged,
        "tail_blown": tail_blown,
        "classification": classification.value,
        "basis": basis,
    }
    factor = 1 - check.tolerance if check.direction == "decrease" else 1 + check.tolerance
    result = CheckResult(
        check.name,
        check.type,
        Result.FAIL if failed else Result.PASS,
        reason,
        canary=test.mean_canary,
        baseline=test.mean_baseline,
        limit=test.mean_baseline * factor,
        details=details,
    )
    return result, _log_harmful_p(test, check.direction)


def judge_latency_sequentially(
    check: LatencyJudgeCheck,
    evidence: SlowShareEvidence,
    window: tuple[VersionSample, VersionSample] | None,
    short: str | None,
) -> CheckResult:
    """The rollout's latency verdict: the anytime-valid slow-share test decides.

    `evidence` already holds this look's increment. With `window` (the settled
    window's figures, at an interval's look), Kayenta's Mann-Whitney judgement
    explains the verdict and `max_tail_ratio`, if set, is enforced as a limit.
    """
    threshold = math.log(1 / check.alpha)
    log_e = evidence.log_evidence
    log_p = min(0.0, -evidence.max_log_evidence)
    proven = log_e >= threshold
    # The explanation names the bound with the most evidence; between intervals it is
    # only needed when the test has something to say.
    family = strongest(evidence) if proven or window is not None else None
    if family is not None and family.log_evidence <= 0 and not proven:
        family = None  # no bound holds evidence against the canary: none to name
    details: dict[str, Any] = {
        "alpha": check.alpha,
        "e_value": math.exp(min(log_e, 700.0)),
        "e_threshold": 1 / check.alpha,
        "p_value": math.exp(log_p),
        "tolerance": check.tolerance,
        "direction": check.direction,
    }
    shares = "" if family is None else f"{_share_text(family, check)}, "
    if not evidence.families:
        shares = "no latency histogram yet, "
    if family is not None:
        details |= {"bound": family.bound, "side": family.side, **_tally_details(family)}
    explained, blown = "", False
    if window is not None:
        judged, _ = judge_latency(check, *window)
        details["kayenta"] = judged.details
        explained = f"; {judged.reason}"
        blown = bool(judged.details.get("tail_blown"))
    evidence_text = (
        f"evidence {details['e_value']:.3g} {'>=' if proven else '<'} {1 / check.alpha:.3g} "
        "(1/alpha; anytime-valid, bucket by bucket)"
    )
    missing = _latency_missing(evidence, window)
    if proven or blown:
        verdict, result = ("slower than tolerated" if proven else "tail limit passed"), Result.FAIL
    elif missing is not None:
        verdict, result = missing, Result.INCONCLUSIVE  # no data is never a pass
    elif short is not None:
        verdict, result = short, Result.INCONCLUSIVE
    else:
        verdict, result = "no evidence of a slower canary", Result.PASS
    reason = f"{verdict}: {shares}{evidence_text}{explained}"
    check_result = CheckResult(
        name=check.name,
        kind=check.type,
        result=result,
        reason=reason,
        canary=family.tally.canary_errors / family.tally.canary_requests
        if family is not None and family.tally.canary_requests
        else None,
        baseline=family.tally.baseline_errors / family.tally.baseline_requests
        if family is not None and family.tally.baseline_requests
        else None,
        limit=None,
        details=details,
    )
    return check_result


def _latency_missing(
    evidence: SlowShareEvidence, window: tuple[VersionSample, VersionSample] | None
) -> str | None:
    """Why latency cannot be judged (a histogram missing, or none shared), or None."""
    if window is not None:
        lacking = [
            name
            for name, sample in zip(("canary", "baseline"), window, strict=True)
            if observations(sample) is None
        ]
        if lacking:
            return f"no latency observations for {' and '.join(lacking)}"
        if not evidence.families:
            canary, baseline = (
                sorted(le for le, _ in sample.latency_buckets if math.isfinite(le))
                for sample in window
            )
            return (
                "canary and baseline latency histograms share no bucket bound "
                f"(canary {_bounds_text(canary)}, baseline {_bounds_text(baseline)}): "
                "give both the same buckets"
            )
    elif not evidence.families:
        return "no latency histogram yet"
    return None


def _bounds_text(bounds: list[float]) -> str:
    shown = ", ".join(f"{b:g}" for b in bounds[:4])
    return f"[{shown}{', ...' if len(bounds) > 4 else ''}]" if bounds else "none"


def _share_text(family: Family, check: LatencyJudgeCheck) -> str:
    t = family.tally  # slow (or fast) requests in the `errors` fields
    canary = t.canary_errors / t.canary_requests if t.canary_requests else 0.0
    baseline = t.baseline_errors / t.baseline_requests if t.baseline_requests else 0.0
    ratio = "inf" if baseline == 0 and canary > 0 else f"{_ratio(canary, baseline):.2f}"
    kind = "slower than" if family.side == "slow" else "at most"
    return (
        f"requests {kind} {_ms(family.bound)}: canary {canary:.2%} "
        f"({t.canary_errors:.0f}/{t.canary_requests:.0f}) vs baseline {baseline:.2%} "
        f"({t.baseline_errors:.0f}/{t.baseline_requests:.0f}), x{ratio} "
        f"(tolerated x{1 + check.tolerance:g})"
    )


def _tally_details(family: Family) -> dict[str, float]:
    t = family.tally
    return {
        "canary_events": t.canary_errors,
        "canary_requests": t.canary_requests,
        "baseline_events": t.baseline_errors,
        "baseline_requests": t.baseline_requests,
    }


def _classify(test: MannWhitney, ratio: float, tolerance: float) -> Classification:
    # Kayenta configures the allowed increase/decrease of the effect size per
    # metric (default 1.0, i.e. off); here they are 1 ± tolerance, as the config
    # documents, so a significant but small shift passes.
    return classify(test, tolerance=tolerance, effect=ratio, allowed=(1 - tolerance, 1 + tolerance))


def classify(
    test: MannWhitney,
    *,
    tolerance: float,
    effect: float,
    allowed: tuple[float, float] = (1.0, 1.0),
    direction: str = "either",
) -> Classification:
    """Kayenta's MannWhitneyClassifier rule on a test already run.

    High when the interval's lower end clears `tolerance` x |estimate|
    (stricter than clearing 0: an interval barely off 0 relative to the shift
    it estimates is too loose to act on) and the effect size (mean ratio, or
    CLES) is at least `allowed[1]`; Low mirrors it. A NaN effect (a mean of 0)
    is not checked, as in Kayenta. An end open at an atom of ties counts as
    clearing a margin it sits on: the test rejected that very shift.
    """
    margin = tolerance * abs(test.hl_shift)
    above = test.ci_low > margin or (test.ci_low >= margin and test.low_open)
    below = test.ci_high < -margin or (test.ci_high <= -margin and test.high_open)
    if direction in ("increase", "either") and above and not effect < allowed[1]:
        return Classification.HIGH
    if direction in ("decrease", "either") and below and not effect > allowed[0]:
        return Classification.LOW
    return Classification.PASS


@dataclass(frozen=True)
class KayentaJudgement:
    """What Kayenta's MannWhitneyClassifier answers for one metric (see `kayenta_classify`)."""

    classification: Classification
    critical: bool
    deviation: float  # the mean ratio (canary / baseline), NaN when a mean is 0
    reason: str


def kayenta_classify(
    canary: Iterable[float],
    baseline: Iterable[float],
    *,
    tolerance: float = 0.25,
    confidence: float = 0.95,
    effect_thresholds: tuple[float, float] = (1.0, 1.0),
    critical_thresholds: tuple[float, float] = (1.0, 1.0),
    effect_measure: str = "meanRatio",
    direction: str = "either",
    critical: bool = False,
    missing_is_pass: bool = False,
) -> KayentaJudgement:
    """One metric judged the way Kayenta's `MannWhitneyClassifier.classify` does.

    The same parameters and classes, for users who bring Kayenta configurations
    and for checking agreement with Kayenta's own test suite. Deliberate
    differences: ties are handled by the tie-corrected test itself (an interval
    end on an atom of ties is open when the test rejects it) instead of adding
    Gaussian noise to constant samples, and the estimate is the Hodges-Lehmann
    median of differences rather than a root of the standardized statistic.
    `missing_is_pass` is Kayenta's `NaNStrategy.Replace`.
    """
    experiment = [v for v in canary if math.isfinite(v)]
    control = [v for v in baseline if math.isfinite(v)]
    if not experiment or not control:
        if missing_is_pass:
            return KayentaJudgement(Classification.PASS, False, 1.0, "")
        return KayentaJudgement(Classification.NODATA, critical, 1.0, "missing data")
    if sorted(experiment) == sorted(control):
        return KayentaJudgement(Classification.PASS, False, 1.0, "canary and baseline identical")
    if len(set(experiment) | set(control)) == 1:
        return KayentaJudgement(Classification.PASS, False, 1.0, "")
    canary_obs = Observations.of((v, 1.0) for v in experiment)
    baseline_obs = Observations.of((v, 1.0) for v in control)
    assert canary_obs is not None
    assert baseline_obs is not None
    test = mann_whitney(canary_obs, baseline_obs, confidence)
    deviation = _kayenta_mean_ratio(test.mean_canary, test.mean_baseline)
    effect = test.cles if effect_measure == "cles" else deviation
    found = classify(
        test,
        tolerance=tolerance,
        effect=effect,
        allowed=effect_thresholds,
        direction=direction,
    )
    failing = (found is Classification.HIGH and not effect < critical_thresholds[1]) or (
        found is Classification.LOW and not effect > critical_thresholds[0]
    )
    reason = "" if found is Classification.PASS else f"classified as {found.value}"
    return KayentaJudgement(found, critical and failing, deviation, reason)


def _kayenta_mean_ratio(canary: float, baseline: float) -> float:
    return math.nan if canary == 0 or baseline == 0 else canary / baseline


def _log_harmful_p(test: MannWhitney, direction: str) -> float:
    if direction == "either":
        return log_erfc(abs(test.z) / _SQRT2)
    z = test.z if direction == "increase" else -test.z
    return min(0.0, log_erfc(z / _SQRT2))  # log(2 x P(Z >= z))


def log_erfc(x: float) -> float:
    """log(erfc(x)) without underflow: erfc(27) is already below the smallest float."""
    if x < 20.0:
        return math.log(math.erfc(x))
    # Asymptotic series: erfc(x) = exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - ...)
    return -x * x - math.log(x * math.sqrt(math.pi)) + math.log1p(-0.5 / x**2 + 0.75 / x**4)


def _ratio(canary: float, baseline: float) -> float:
    if baseline == 0:
        return 1.0 if canary == 0 else math.inf
    return canary / baseline


def _tail(sample: VersionSample, q: float) -> float | None:
    if sample.latency_samples:
        return _sample_quantile(q, sorted(v for v in sample.latency_samples if math.isfinite(v)))
    return histogram_quantile(q, sample.latency_buckets)


def _sample_quantile(q: float, ordered: list[float]) -> float | None:
    """Linear interpolation between order statistics (numpy's and R's default)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    index = math.floor(position)
    upper = ordered[min(index + 1, len(ordered) - 1)]
    return ordered[index] + (position - index) * (upper - ordered[index])


def _ms(seconds: float | None, signed: bool = False, unit: str = "ms") -> str:
    if seconds is None:
        return "n/a"
    ms = seconds * 1000
    spec = ("+" if signed else "") + (".2g" if abs(ms) < 10 else ".0f")
    return f"{ms:{spec}}{unit}"
