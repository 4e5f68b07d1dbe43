"""Blast radius: how many users a bad canary hurts before it is rolled back.

Usage:
    python benchmarks/blast_radius.py [--trials 500] [--seed 1] [--json FILE]

Six decision rules watch the same simulated service (`safeship.simulation`:
Poisson requests split by the router weight in force each second, binomial
errors, log-normal latencies binned into histogram buckets) in virtual time.
For one scenario, trial i of every rule draws its traffic from the same seeded
stream (child i of `SeedSequence(seed)`, as `safeship simulate` does), so the
rules are compared on common random numbers, side by side in one run.

Rules:
  (a) plan 0.1%     the original plan: steps 10/50/100, 300 s per step; at the end of each
                    hold the service-wide error rate (canary + baseline) over the last
                    5 minutes > 0.1% rolls back, else advance; reaching 100 is promotion.
  (b) plan 1%       the same with a 1% threshold.
  (c) Flagger       Flagger's defaults: start at weight 10; every 60 s the canary's success
                    rate over the last 60 s must be >= 99% (no traffic fails too); failed
                    checks accumulate (never reset) and 5 roll back; a passing check adds
                    stepWeight 10 up to maxWeight 50, and a passing check at 50 promotes.
  (d) Argo          steps 10/50/100, 150 s per step; an analysis measurement every 60 s of
                    the canary error rate over the last 60 s, successCondition "<= 1%";
                    failureLimit 2 (the third failed measurement rolls back).
  (e) Kayenta       steps and holds of (d); every 60 s an exact Mann-Whitney test of the
                    canary's vs the baseline's per-10-second error ratios in that minute
                    (6 vs 6), two-sided at confidence 0.98; significant with the canary
                    higher rolls back.
  (f) safeship      `CanaryStrategy(hold=150, min_hold=60, warmup=10, interval=10)` with the
                    defaults (catastrophe guard, crash-loop rule, sequential error-rate and
                    latency tests, looking at every second's figures), run by the real
                    controller through `safeship.simulation.run_trial`.

Conventions for the comparators (each generous to the comparator where the real tool
would be slower): a decision moves traffic the instant it is taken (real Flagger rolls
back on the iteration after the fifth failure and shifts traffic to the primary on the
iteration after promoting, 60 s later each time; Argo and Kayenta need their own
reconcile loops); a measurement due at the same instant a step ends is taken first;
Argo's first measurement is at 60 s (as with initialDelay = interval), not at 0 s on
an empty window. Rules (a)-(e) look only at errors, so they cannot see the latency
scenarios: that is what they are, not a bug here. They read what the router saw (as a
mesh's metrics show it), so they see the requests a crashing canary failed while down;
safeship reads only the versions' own metrics.

Failed canary requests are ground truth from `SimulatedTraffic.canary_served` at the
decision time: the requests the canary served in error before traffic left it.

After the comparison, two studies of safeship alone: its rollback rate and time to
decision as the canary's error rate rises, from 5 to 5000 rps (a worse canary must never
be caught less often or later), and an A/A latency run looked at every 10 s for 600 s,
beside a fixed-sample Mann-Whitney and Kayenta's classifier re-run at every look.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safeship.analysis import slow_share
from safeship.analysis.latency import Classification, classify, mann_whitney, observations
from safeship.clock import VirtualClock
from safeship.config import CanaryStrategy, LatencyJudgeCheck
from safeship.providers.interface import Window
from safeship.rollout.machine import Outcome
from safeship.simulation import SimulatedRouter, SimulatedTraffic, TrafficModel, Trial, run_trial

RPS = 50.0
BASELINE_ERROR_RATE = 0.005

FAST_RPS = 1000.0

SCENARIOS: dict[str, TrafficModel] = {
    "healthy": TrafficModel(rps=RPS, baseline_error_rate=BASELINE_ERROR_RATE),
    "errors x3": TrafficModel(
        rps=RPS, baseline_error_rate=BASELINE_ERROR_RATE, canary_error_rate=3 * BASELINE_ERROR_RATE
    ),
    "errors x10": TrafficModel(
        rps=RPS, baseline_error_rate=BASELINE_ERROR_RATE, canary_error_rate=10 * BASELINE_ERROR_RATE
    ),
    "latency x1.5": TrafficModel(
        rps=RPS,
        baseline_error_rate=BASELINE_ERROR_RATE,
        canary_error_rate=BASELINE_ERROR_RATE,
        canary_latency_factor=1.5,
    ),
    # Restarts every 20 s (down 1 s, its counters reset), errors x3 in between.
    "crash loop": TrafficModel(
        rps=RPS,
        baseline_error_rate=BASELINE_ERROR_RATE,
        canary_error_rate=3 * BASELINE_ERROR_RATE,
        canary_restart_every=20.0,
    ),
    # 1% of the canary's requests take 50 times the median.
    "latency tail": TrafficModel(
        rps=RPS,
        baseline_error_rate=BASELINE_ERROR_RATE,
        canary_error_rate=BASELINE_ERROR_RATE,
        canary_slow_share=0.01,
        canary_slow_factor=50.0,
    ),
    "50% @1000rps": TrafficModel(
        rps=FAST_RPS, baseline_error_rate=BASELINE_ERROR_RATE, canary_error_rate=0.5
    ),
    "100% @1000rps": TrafficModel(
        rps=FAST_RPS, baseline_error_rate=BASELINE_ERROR_RATE, canary_error_rate=1.0
    ),
}
HEALTHY = "healthy"

SAFESHIP_STRATEGY = CanaryStrategy(hold=150, min_hold=60, warmup=10, interval=10)

# Fixed-width layout.
LABEL_WIDTH = 24
CELL_WIDTH = 15


# --- a comparator's world: the same router and traffic `run_trial` builds -----------------


class Run:
    """One comparator rollout on a virtual clock: weights, measurements, ground truth."""

    def __init__(self, model: TrafficModel, rng: np.random.Generator) -> None:
        self.clock = VirtualClock()
        self.started = self.clock.now()
        self.router = SimulatedRouter(self.clock)
        self.traffic = SimulatedTraffic(model, self.router, rng)

    @property
    def elapsed(self) -> float:
        return self.clock.now() - self.started

    def wait_until(self, elapsed: float) -> None:
        self.clock.advance(elapsed - self.elapsed)

    def set_weight(self, weight: int) -> None:
        self.router.set_weight(weight)

    def counts(self, since: float, until: float | None = None) -> tuple[float, float, float, float]:
        """Canary requests, canary errors, baseline requests, baseline errors in [since, until].

        `until` defaults to now. `since` must be an earlier measurement's end (or 0): the
        traffic is generated lazily, in chunks ending wherever it was last measured, each
        second split by the weight that was in force then.
        """
        end = self.clock.now() if until is None else self.started + until
        seen = self.traffic.router_counts(self.started + since, end)
        return float(seen[0]), float(seen[1]), float(seen[2]), float(seen[3])

    def end(self, outcome: Outcome, reason: str | None) -> Trial:
        """Move all traffic off (rollback) or onto (promotion) the canary, now."""
        self.set_weight(0 if outcome is Outcome.ROLLED_BACK else 100)
        requests, failed = self.traffic.canary_served(self.clock.now())
        return Trial(outcome, reason, self.elapsed, requests, failed)


def within_percent(errors: float, requests: float, percent: float) -> bool:
    """errors / requests <= percent%, exactly on integer counts; no requests is not within."""
    return requests > 0 and 100 * errors <= percent * requests


# --- (a), (b): the original plan ---------------------------------------------------------


def plan_rule(threshold: float) -> Callable[[TrafficModel, np.random.Generator], Trial]:
    """Steps 10, 50, 100; 300 s holds; service-wide error rate over the hold vs `threshold`."""

    def run(model: TrafficModel, rng: np.random.Generator) -> Trial:
        r = Run(model, rng)
        for weight in (10, 50):
            step_start = r.elapsed
            r.set_weight(weight)
            r.wait_until(step_start + 300)
            c_req, c_err, b_req, b_err = r.counts(step_start)
            requests, errors = c_req + b_req, c_err + b_err
            if requests == 0 or errors / requests > threshold:
                return r.end(Outcome.ROLLED_BACK, "service_error_rate")
        return r.end(Outcome.PROMOTED, None)

    return run


# --- (c): Flagger's defaults -------------------------------------------------------------

FLAGGER_INTERVAL = 60.0
FLAGGER_THRESHOLD = 5
FLAGGER_STEP_WEIGHT = 10
FLAGGER_MAX_WEIGHT = 50
FLAGGER_MIN_SUCCESS_PERCENT = 99.0


def flagger(model: TrafficModel, rng: np.random.Generator) -> Trial:
    """Flagger's progressive canary: request-success-rate >= 99% every minute, threshold 5."""
    r = Run(model, rng)
    weight = FLAGGER_STEP_WEIGHT
    r.set_weight(weight)
    failed_checks = 0
    while True:
        since = r.elapsed
        r.wait_until(since + FLAGGER_INTERVAL)
        c_req, c_err, _, _ = r.counts(since)
        if not within_percent(c_err, c_req, 100 - FLAGGER_MIN_SUCCESS_PERCENT):
            failed_checks += 1  # cumulative: Flagger never resets it during an analysis
            if failed_checks >= FLAGGER_THRESHOLD:
                return r.end(Outcome.ROLLED_BACK, "failed_checks")
        elif weight >= FLAGGER_MAX_WEIGHT:
            return r.end(Outcome.PROMOTED, None)
        else:
            weight = min(weight + FLAGGER_STEP_WEIGHT, FLAGGER_MAX_WEIGHT)
            r.set_weight(weight)


# --- (d), (e): Argo-style steps with a background analysis ------------------------------

STEP_WEIGHTS = (10, 50)  # then 100: promotion
STEP_SECONDS = 150.0
ANALYSIS_INTERVAL = 60.0
ARGO_FAILURE_LIMIT = 2
ARGO_MAX_ERROR_PERCENT = 1.0
KAYENTA_BIN = 10.0
KAYENTA_CONFIDENCE = 0.98


def stepped(
    measurement: Callable[[Run, float], bool], failure_limit: int, reason: str
) -> Callable[[TrafficModel, np.random.Generator], Trial]:
    """Steps 10, 50, 100 of 150 s; `measurement(run, since)` every 60 s says pass/fail.

    The rollout fails when failed measurements exceed `failure_limit` (counted over the
    whole rollout, as one background AnalysisRun does); a measurement due when a step
    ends is taken before the step advances.
    """

    def run(model: TrafficModel, rng: np.random.Generator) -> Trial:
        r = Run(model, rng)
        step_ends = [STEP_SECONDS * (i + 1) for i in range(len(STEP_WEIGHTS))]
        last = step_ends[-1]
        looks = [ANALYSIS_INTERVAL * k for k in range(1, int(last // ANALYSIS_INTERVAL) + 1)]
        events = sorted({*step_ends, *looks})
        step = 0
        r.set_weight(STEP_WEIGHTS[step])
        failures = 0
        for at in events:
            r.wait_until(at)
            if at in looks and not measurement(r, at - ANALYSIS_INTERVAL):
                failures += 1
                if failures > failure_limit:
                    return r.end(Outcome.ROLLED_BACK, reason)
            if at in step_ends:
                step += 1
                if step == len(STEP_WEIGHTS):
                    return r.end(Outcome.PROMOTED, None)
                r.set_weight(STEP_WEIGHTS[step])
        raise AssertionError("the last step end promotes")

    return run


def argo_measurement(r: Run, since: float) -> bool:
    """successCondition: canary error rate over the last interval <= 1% (no data fails)."""
    c_req, c_err, _, _ = r.counts(since)
    return within_percent(c_err, c_req, ARGO_MAX_ERROR_PERCENT)


def kayenta_measurement(r: Run, since: float) -> bool:
    """Mann-Whitney on per-10 s error ratios, canary vs baseline; fails when canary higher."""
    canary: list[float] = []
    baseline: list[float] = []
    bins = round((r.elapsed - since) / KAYENTA_BIN)
    # Read in time order, so each bin's start is the previous bin's end.
    per_bin = [
        r.counts(since + k * KAYENTA_BIN, since + (k + 1) * KAYENTA_BIN) for k in range(bins)
    ]
    for c_req, c_err, b_req, b_err in per_bin:
        if c_req > 0:  # a bin without requests has no ratio (Kayenta drops NaN)
            canary.append(c_err / c_req)
        if b_req > 0:
            baseline.append(b_err / b_req)
    if not canary or not baseline:
        return True  # NoData is not a failure for Kayenta's judge
    p_value, shift = mann_whitney_exact(canary, baseline)
    return not (p_value < 1 - KAYENTA_CONFIDENCE and shift > 0)


@functools.cache
def _assignments(n: int, m: int) -> np.ndarray:
    """Every way to pick which n of the n + m pooled positions are the first sample's (0/1 rows)."""
    rows = np.zeros((math.comb(n + m, n), n + m))
    for i, chosen in enumerate(itertools.combinations(range(n + m), n)):
        rows[i, list(chosen)] = 1.0
    return rows


def midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mid: np.ndarray = (upper - (counts - 1) / 2.0)[inverse]
    return mid


def mann_whitney_exact(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Exact two-sided Mann-Whitney p-value of x vs y, and x's rank sum minus its expectation.

    The null distribution is the rank sum over all C(n+m, n) assignments of the observed
    midranks (924 for 6 vs 6), so ties are handled exactly (a conditional permutation
    test). A positive second value means x tends to be the higher sample.
    """
    pooled = np.asarray([*x, *y], dtype=float)
    ranks = midranks(pooled)
    n = len(x)
    expected = n * (len(pooled) + 1) / 2.0
    observed = float(ranks[:n].sum()) - expected
    null = _assignments(n, len(y)) @ ranks - expected
    p_value = float(np.mean(np.abs(null) >= abs(observed) - 1e-9))
    return p_value, observed


# --- (f): safeship -------------------------------------------------------------------------


def safeship_rule(model: TrafficModel, rng: np.random.Generator) -> Trial:
    return run_trial(SAFESHIP_STRATEGY, model, rng)


@dataclass(frozen=True)
class Rule:
    key: str
    label: str
    run: Callable[[TrafficModel, np.random.Generator], Trial]


RULES = (
    Rule("a", "(a) plan 0.1% svc-wide", plan_rule(0.001)),
    Rule("b", "(b) plan 1% svc-wide", plan_rule(0.01)),
    Rule("c", "(c) Flagger defaults", flagger),
    Rule("d", "(d) Argo-style", stepped(argo_measurement, ARGO_FAILURE_LIMIT, "failure_limit")),
    Rule("e", "(e) Kayenta-style MW", stepped(kayenta_measurement, 0, "mann_whitney")),
    Rule("f", "(f) safeship default", safeship_rule),
)
SAFESHIP = "f"
FLAGGER = "c"
PLAN_1_PERCENT = "b"


# --- running and summarising -----------------------------------------------------------


def summarise(trials: list[Trial]) -> dict[str, Any]:
    n = len(trials)
    failed = [t.canary_failed for t in trials]
    seconds = sorted(t.seconds for t in trials)
    reasons: dict[str, int] = {}
    for t in trials:
        if t.outcome is Outcome.ROLLED_BACK and t.reason:
            reasons[t.reason] = reasons.get(t.reason, 0) + 1
    return {
        "trials": n,
        "rollback_rate": sum(t.outcome is Outcome.ROLLED_BACK for t in trials) / n,
        "promote_rate": sum(t.outcome is Outcome.PROMOTED for t in trials) / n,
        "other_rate": sum(t.outcome not in (Outcome.ROLLED_BACK, Outcome.PROMOTED) for t in trials)
        / n,
        "mean_failed_canary_requests": statistics.fmean(failed),
        "ci95_failed_canary_requests": 1.96 * statistics.stdev(failed) / math.sqrt(n)
        if n > 1
        else math.nan,
        "mean_canary_requests": statistics.fmean(t.canary_requests for t in trials),
        "mean_time_to_decision": statistics.fmean(seconds),
        "p95_time_to_decision": seconds[max(0, math.ceil(0.95 * n) - 1)],
        "rollback_reasons": reasons,
    }


def run_all(
    trials: int, seed: int
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, float]]:
    """Every rule on every scenario; trial i of a scenario uses the same stream for each rule."""
    children = np.random.SeedSequence(seed).spawn(trials)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    timings: dict[str, float] = {}
    for rule in RULES:
        began = time.perf_counter()
        results[rule.key] = {
            name: summarise([rule.run(model, np.random.default_rng(c)) for c in children])
            for name, model in SCENARIOS.items()
        }
        timings[rule.key] = time.perf_counter() - began
    return results, timings


def sprt_floor(p0: float, p1: float, alpha: float, beta: float) -> dict[str, float]:
    """Wald's SPRT expected sample size under H1 (canary requests), and its failed requests."""
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    numerator = (1 - beta) * math.log((1 - beta) / alpha) + beta * math.log(beta / (1 - alpha))
    expected_n = numerator / kl
    return {"p0": p0, "p1": p1, "kl": kl, "expected_n": expected_n, "failed": expected_n * p1}


def ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan


# --- safeship alone: severity, and latency looked at every interval ----------------------

SEVERITY_RATES = (1.5, 3.0, 10.0, 40.0, 100.0, 200.0)  # canary errors x baseline (200: 100%)
SEVERITY_RPS = (5.0, 50.0, 500.0, 5000.0)


def severity(trials: int, seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """safeship's rollback rate and time to decision as the canary gets worse, per load."""
    children = np.random.SeedSequence(seed + 1).spawn(trials)
    grid: dict[str, dict[str, dict[str, float]]] = {}
    for rps in SEVERITY_RPS:
        row: dict[str, dict[str, float]] = {}
        for factor in SEVERITY_RATES:
            model = TrafficModel(
                rps=rps,
                baseline_error_rate=BASELINE_ERROR_RATE,
                canary_error_rate=min(1.0, factor * BASELINE_ERROR_RATE),
            )
            done = [run_trial(SAFESHIP_STRATEGY, model, np.random.default_rng(c)) for c in children]
            row[f"x{factor:g}"] = {
                "rollback_rate": sum(t.outcome is Outcome.ROLLED_BACK for t in done) / trials,
                "mean_time_to_decision": statistics.fmean(t.seconds for t in done),
                "mean_failed_canary_requests": statistics.fmean(t.canary_failed for t in done),
            }
        grid[f"{rps:g} rps"] = row
    return grid


def severity_monotone(grid: dict[str, dict[str, dict[str, float]]], trials: int) -> bool:
    """A worse canary is never rolled back less often, nor (once caught) later.

    Rates are compared within one trial of noise, times within a second (one look)
    or 5%, whichever is larger; times only where both canaries are always caught.
    """
    for row in grid.values():
        cells = list(row.values())
        for milder, worse in itertools.pairwise(cells):
            if worse["rollback_rate"] < milder["rollback_rate"] - 1 / trials:
                return False
            both_caught = min(milder["rollback_rate"], worse["rollback_rate"]) == 1.0
            slack = max(1.0, 0.05 * milder["mean_time_to_decision"])
            late = worse["mean_time_to_decision"] > milder["mean_time_to_decision"] + slack
            if both_caught and late:
                return False
    return True


PEEK_SECONDS = 600.0
PEEK_INTERVAL = 10.0
Buckets = tuple[tuple[float, float], ...]


def latency_peeking(trials: int, seed: int) -> dict[str, dict[str, float]]:
    """A/A: the same latencies on both versions, judged every 10 s for 600 s at 10% weight.

    Three rules look at the histograms each time: a fixed-sample Mann-Whitney test
    on the growing window (two-sided p < 0.02, as Kayenta's judge computes it) re-run
    at every look, Kayenta's classifier (High) likewise, and safeship's latency check
    (anytime-valid, fed each look's increment). The share of runs a rule ever
    rejects is its false-rollback rate.
    """
    check = LatencyJudgeCheck()
    out: dict[str, dict[str, float]] = {}
    for rps in (50.0, 500.0):
        rejected = {"mw": 0, "kayenta": 0, "safeship": 0}
        for child in np.random.SeedSequence(seed + 2).spawn(trials):
            run = Run(TrafficModel(rps=rps), np.random.default_rng(child))
            run.set_weight(10)
            evidence = slow_share.SlowShareEvidence()
            hit = dict.fromkeys(rejected, False)
            before: tuple[Buckets, Buckets] = ((), ())
            for k in range(1, int(PEEK_SECONDS / PEEK_INTERVAL) + 1):
                run.wait_until(k * PEEK_INTERVAL)
                m = run.traffic.measure(Window(run.started, run.clock.now()))
                now = (m.canary.latency_buckets, m.baseline.latency_buckets)
                evidence = slow_share.update(
                    check, evidence, _less(now[0], before[0]), _less(now[1], before[1])
                )
                before = now
                hit["safeship"] |= evidence.log_evidence >= math.log(1 / check.alpha)
                canary, baseline = observations(m.canary), observations(m.baseline)
                if canary is None or baseline is None:
                    continue
                test = mann_whitney(canary, baseline, KAYENTA_CONFIDENCE)
                hit["mw"] |= test.p_value < 1 - KAYENTA_CONFIDENCE
                ratio = test.mean_canary / test.mean_baseline if test.mean_baseline else math.inf
                high = classify(test, tolerance=check.tolerance, effect=ratio)
                hit["kayenta"] |= high is Classification.HIGH
            for rule, rejects in hit.items():
                rejected[rule] += rejects
        out[f"{rps:g} rps"] = {rule: count / trials for rule, count in rejected.items()}
    return out


def _less(now: Buckets, before: Buckets) -> Buckets:
    earlier = dict(before)
    return tuple((le, count - earlier.get(le, 0.0)) for le, count in now)


# --- printing ----------------------------------------------------------------------------


def table(
    title: str,
    results: dict[str, dict[str, dict[str, Any]]],
    cell: Callable[[dict[str, Any]], str],
) -> list[str]:
    lines = [title, "-" * len(title)]
    header = "rule".ljust(LABEL_WIDTH) + "".join(s.rjust(CELL_WIDTH) for s in SCENARIOS)
    lines.append(header)
    for rule in RULES:
        row = rule.label.ljust(LABEL_WIDTH)
        row += "".join(cell(results[rule.key][s]).rjust(CELL_WIDTH) for s in SCENARIOS)
        lines.append(row)
    lines.append("")
    return lines


def report(
    results: dict[str, dict[str, dict[str, Any]]],
    trials: int,
    seed: int,
    grid: dict[str, dict[str, dict[str, float]]],
    peeking: dict[str, dict[str, float]],
) -> tuple[list[str], dict[str, Any]]:
    lines = [
        f"blast radius: {trials} trials per rule and scenario, seed {seed}, {RPS:g} rps "
        f"(@1000rps: {FAST_RPS:g}), baseline errors {BASELINE_ERROR_RATE:.1%}",
        "",
    ]
    lines += table(
        "Rolled back (healthy: false-rollback rate; others: detection rate)",
        results,
        lambda s: f"{s['rollback_rate']:.1%}",
    )
    lines += table(
        "Mean failed canary requests (+- 95% CI)",
        results,
        lambda s: (
            f"{s['mean_failed_canary_requests']:.1f} +-{s['ci95_failed_canary_requests']:.1f}"
        ),
    )
    lines += table("Mean canary requests", results, lambda s: f"{s['mean_canary_requests']:.0f}")
    lines += table(
        "Mean time to decision (s)", results, lambda s: f"{s['mean_time_to_decision']:.0f}"
    )
    lines += table(
        "p95 time to decision (s)", results, lambda s: f"{s['p95_time_to_decision']:.0f}"
    )
    others = [
        f"  {rule.label.strip()} / {name}: {s['other_rate']:.1%} neither promoted nor rolled back"
        for rule in RULES
        for name, s in results[rule.key].items()
        if s["other_rate"] > 0
    ]
    if others:
        lines += [
            "Other outcomes (paused: the canary keeps its weight until a person answers;",
            "its failed requests above are counted only up to the pause)",
            *others,
            "",
        ]
    lines.append("safeship rollback reasons")
    for name, s in results[SAFESHIP].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["rollback_reasons"].items()))
        lines.append(f"  {name}: {reasons or 'none'}")
    lines.append("")

    # Ratios of failed canary requests, rule / safeship.
    mine = results[SAFESHIP]
    ratios: dict[str, dict[str, float]] = {}
    title = "Failed canary requests, rule / safeship (how many times more users hurt)"
    lines += [title, "-" * len(title)]
    bad = ("errors x3", "errors x10", "crash loop", "50% @1000rps", "100% @1000rps")
    lines.append("rule".ljust(LABEL_WIDTH) + "".join(s.rjust(CELL_WIDTH) for s in bad))
    for rule in RULES:
        if rule.key == SAFESHIP:
            continue
        ratios[rule.key] = {
            s: ratio(
                results[rule.key][s]["mean_failed_canary_requests"],
                mine[s]["mean_failed_canary_requests"],
            )
            for s in bad
        }
        lines.append(
            rule.label.ljust(LABEL_WIDTH)
            + "".join(f"x{ratios[rule.key][s]:.2f}".rjust(CELL_WIDTH) for s in bad)
        )
    lines.append("")

    monotone = severity_monotone(grid, max(2, trials // 5))
    targets = [
        (
            "safeship false rollback (healthy) <= 1%",
            f"{mine[HEALTHY]['rollback_rate']:.1%}",
            mine[HEALTHY]["rollback_rate"] <= 0.01,
        ),
        (
            "safeship detection at errors x3 >= 99%",
            f"{mine['errors x3']['rollback_rate']:.1%}",
            mine["errors x3"]["rollback_rate"] >= 0.99,
        ),
        (
            "safeship detection at errors x10 >= 99%",
            f"{mine['errors x10']['rollback_rate']:.1%}",
            mine["errors x10"]["rollback_rate"] >= 0.99,
        ),
        (
            "x10: >= 5x fewer failed than Flagger defaults",
            f"x{ratios[FLAGGER]['errors x10']:.2f}",
            ratios[FLAGGER]["errors x10"] >= 5,
        ),
        (
            "x10: >= 10x fewer failed than rule (b)",
            f"x{ratios[PLAN_1_PERCENT]['errors x10']:.2f}",
            ratios[PLAN_1_PERCENT]["errors x10"] >= 10,
        ),
        (
            "x3: >= 1.5x fewer failed than Flagger defaults",
            f"x{ratios[FLAGGER]['errors x3']:.2f}",
            ratios[FLAGGER]["errors x3"] >= 1.5,
        ),
        (
            "healthy promoted within 300 s + 10 s (p95)",
            f"{mine[HEALTHY]['p95_time_to_decision']:.0f} s",
            mine[HEALTHY]["p95_time_to_decision"] <= 310,
        ),
        (
            "100% errors at 1000 rps: < 500 failed (mean)",
            f"{mine['100% @1000rps']['mean_failed_canary_requests']:.0f}",
            mine["100% @1000rps"]["mean_failed_canary_requests"] < 500,
        ),
        (
            "50% errors at 1000 rps: gone in 5 s (p95)",
            f"{mine['50% @1000rps']['p95_time_to_decision']:.0f} s",
            mine["50% @1000rps"]["p95_time_to_decision"] <= 5,
        ),
        (
            "crash loop (restarts, errors x3) rolled back >= 99%",
            f"{mine['crash loop']['rollback_rate']:.1%}",
            mine["crash loop"]["rollback_rate"] >= 0.99,
        ),
        (
            "latency tail (1% of requests x50) detected >= 95%",
            f"{mine['latency tail']['rollback_rate']:.1%}",
            mine["latency tail"]["rollback_rate"] >= 0.95,
        ),
        (
            "worse canary never caught less often or later",
            "monotone" if monotone else "not",
            monotone,
        ),
        *(
            (
                f"A/A latency looked at every 10 s, {rps}: <= alpha",
                f"{rates['safeship']:.1%}",
                rates["safeship"] <= LatencyJudgeCheck().alpha,
            )
            for rps, rates in peeking.items()
        ),
    ]
    alpha = beta = 0.01
    floors = {
        name: sprt_floor(BASELINE_ERROR_RATE, SCENARIOS[name].canary_error_rate, alpha, beta)
        for name in ("errors x3", "errors x10")
    }
    title = (
        f"Floor: Wald's SPRT on the canary's own requests, p0 = {BASELINE_ERROR_RATE} known, "
        f"alpha = {alpha}, beta = {beta}"
    )
    lines += [title, "-" * len(title)]
    columns = ("p1", "KL/request", "E1[N]", "floor failed", "safeship fail", "ratio")
    lines.append("scenario".ljust(LABEL_WIDTH) + "".join(c.rjust(CELL_WIDTH) for c in columns))
    for name, f in floors.items():
        got = mine[name]["mean_failed_canary_requests"]
        f["safeship_failed"] = got
        f["safeship_canary_requests"] = mine[name]["mean_canary_requests"]
        f["ratio"] = ratio(got, f["failed"])
        cells = (
            f"{f['p1']:.3f}",
            f"{f['kl']:.5f}",
            f"{f['expected_n']:.0f}",
            f"{f['failed']:.2f}",
            f"{got:.2f}",
            f"x{f['ratio']:.2f}",
        )
        lines.append(name.ljust(LABEL_WIDTH) + "".join(c.rjust(CELL_WIDTH) for c in cells))
    lines.append("")
    for name in ("errors x3", "errors x10"):
        targets.append(
            (
                f"{name}: failed within 2x Wald's SPRT floor",
                f"x{floors[name]['ratio']:.2f}",
                floors[name]["ratio"] <= 2,
            )
        )
    lines += _severity_table(grid)
    lines += _peeking_table(peeking)
    title = "Targets"
    lines += [title, "-" * len(title)]
    for text, value, met in targets:
        lines.append(f"{'PASS' if met else 'FAIL'}  {text.ljust(52)}{value.rjust(10)}")
    lines.append("")

    figures = {
        "ratios_rule_over_safeship": ratios,
        "severity": grid,
        "latency_peeking": peeking,
        "targets": [{"target": t, "value": v, "met": m} for t, v, m in targets],
        "sprt_floor": floors,
    }
    return lines, figures


def _severity_table(grid: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    title = (
        "safeship as the canary gets worse: rolled back / mean time to decision (s), "
        "canary errors x baseline 0.5%"
    )
    lines = [title, "-" * len(title)]
    columns = list(next(iter(grid.values())))
    lines.append("load".ljust(LABEL_WIDTH) + "".join(c.rjust(CELL_WIDTH) for c in columns))
    for load, row in grid.items():
        cells = (
            f"{c['rollback_rate']:.0%} / {c['mean_time_to_decision']:.0f}" for c in row.values()
        )
        lines.append(load.ljust(LABEL_WIDTH) + "".join(c.rjust(CELL_WIDTH) for c in cells))
    lines.append("")
    return lines


def _peeking_table(peeking: dict[str, dict[str, float]]) -> list[str]:
    title = "A/A latency, looked at every 10 s for 600 s: share of runs falsely rejected"
    lines = [title, "-" * len(title)]
    names = {
        "mw": "Mann-Whitney p < 0.02",
        "kayenta": "Kayenta classifier",
        "safeship": "safeship latency check",
    }
    lines.append("rule".ljust(LABEL_WIDTH) + "".join(r.rjust(CELL_WIDTH) for r in peeking))
    for key, label in names.items():
        row = "".join(f"{rates[key]:.1%}".rjust(CELL_WIDTH) for rates in peeking.values())
        lines.append(label.ljust(LABEL_WIDTH) + row)
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="trials per rule and scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    args = parser.parse_args(argv)
    if args.trials < 2:
        parser.error("--trials must be at least 2")

    began = time.perf_counter()
    results, timings = run_all(args.trials, args.seed)
    step = time.perf_counter()
    grid = severity(max(2, args.trials // 5), args.seed)
    timings["severity"] = time.perf_counter() - step
    step = time.perf_counter()
    peeking = latency_peeking(args.trials, args.seed)
    timings["A/A latency"] = time.perf_counter() - step
    lines, figures = report(results, args.trials, args.seed, grid, peeking)
    wall = time.perf_counter() - began
    per_rule = ", ".join(f"({k}) {v:.1f}" for k, v in timings.items())
    lines.append(f"wall time {wall:.1f} s (per rule, s: {per_rule})")
    print("\n".join(lines))

    if args.json:
        document = {
            "trials": args.trials,
            "seed": args.seed,
            "scenarios": {
                name: {
                    "rps": m.rps,
                    "baseline_error_rate": m.baseline_error_rate,
                    "canary_error_rate": m.canary_error_rate,
                    "canary_latency_factor": m.canary_latency_factor,
                }
                for name, m in SCENARIOS.items()
            },
            "rules": {rule.key: rule.label for rule in RULES},
            "safeship_strategy": SAFESHIP_STRATEGY.model_dump(mode="json"),
            "results": results,
            **figures,
            "wall_seconds": wall,
            "rule_seconds": timings,
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
