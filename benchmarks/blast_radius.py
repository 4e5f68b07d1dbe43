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
                    default checks (sequential error-rate test + latency judge), run by the
                    real controller through `safeship.simulation.run_trial`.

Conventions for the comparators (each generous to the comparator where the real tool
would be slower): a decision moves traffic the instant it is taken (real Flagger rolls
back on the iteration after the fifth failure and shifts traffic to the primary on the
iteration after promoting, 60 s later each time; Argo and Kayenta need their own
reconcile loops); a measurement due at the same instant a step ends is taken first;
Argo's first measurement is at 60 s (as with initialDelay = interval), not at 0 s on
an empty window. Rules (a)-(e) look only at errors, so they cannot see the latency
scenario: that is what they are, not a bug here.

Failed canary requests are ground truth from `SimulatedTraffic.canary_served` at the
decision time: the requests the canary served in error before traffic left it.
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

from safeship.clock import VirtualClock
from safeship.config import CanaryStrategy
from safeship.rollout.machine import Outcome
from safeship.simulation import SimulatedRouter, SimulatedTraffic, TrafficModel, Trial, run_trial

RPS = 50.0
BASELINE_ERROR_RATE = 0.005

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
    results: dict[str, dict[str, dict[str, Any]]], trials: int, seed: int
) -> tuple[list[str], dict[str, Any]]:
    lines = [
        f"blast radius: {trials} trials per rule and scenario, seed {seed}, {RPS:g} rps, "
        f"baseline errors {BASELINE_ERROR_RATE:.1%}",
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
    bad = ("errors x3", "errors x10")
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
    ]
    title = "Targets"
    lines += [title, "-" * len(title)]
    for text, value, met in targets:
        lines.append(f"{'PASS' if met else 'FAIL'}  {text.ljust(48)}{value.rjust(10)}")
    lines.append("")

    alpha = beta = 0.01
    floors = {
        name: sprt_floor(BASELINE_ERROR_RATE, SCENARIOS[name].canary_error_rate, alpha, beta)
        for name in bad
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

    figures = {
        "ratios_rule_over_safeship": ratios,
        "targets": [{"target": t, "value": v, "met": m} for t, v, m in targets],
        "sprt_floor": floors,
    }
    return lines, figures


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
    lines, figures = report(results, args.trials, args.seed)
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
