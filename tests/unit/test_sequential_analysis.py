"""The anytime-valid sequential error-rate test: false rollbacks bounded however often it looks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safeship.analysis import Memory, Result, evaluate
from safeship.analysis.evaluate import Snapshot
from safeship.analysis.sequential import Counts, Evidence, harm_grid, judge, update
from safeship.config import CanaryStrategy, SequentialErrorRateCheck
from safeship.providers.interface import Measurement, VersionSample, Window

CHECK = SequentialErrorRateCheck(alpha=0.05)


def run_looks(
    rng: np.random.Generator, canary_rate: float, baseline_rate: float, looks: int, share: float
) -> bool:
    """Whether the test ever rolled back over `looks` looks of 10 s at 50 rps."""
    evidence = Evidence()
    for _ in range(looks):
        n_c = rng.poisson(500 * share)
        n_b = rng.poisson(500 * (1 - share))
        step = Counts(n_c, rng.binomial(n_c, canary_rate), n_b, rng.binomial(n_b, baseline_rate))
        evidence = update(CHECK, evidence, step)
        if judge(CHECK, evidence, enough_data=True, short_reason="").result.result is Result.FAIL:
            return True
    return False


def test_a_a_false_rollback_rate_stays_under_alpha_over_many_looks() -> None:
    rng = np.random.default_rng(20261127)
    trials = 2000
    # 120 looks each (20 minutes at one look per 10 s): a fixed-threshold test looked at
    # this often would cross its 5% level in far more than 5% of the trials.
    false_rollbacks = sum(run_looks(rng, 0.005, 0.005, 120, 0.3) for _ in range(trials))
    assert false_rollbacks / trials <= CHECK.alpha


def test_a_tenfold_regression_is_caught_within_a_few_looks() -> None:
    rng = np.random.default_rng(7)
    caught = sum(run_looks(rng, 0.05, 0.005, 6, 0.1) for _ in range(200))
    assert caught / 200 >= 0.95


def test_a_baseline_without_errors_works() -> None:
    evidence = Evidence()
    for _ in range(4):
        evidence = update(CHECK, evidence, Counts(50, 3, 450, 0))
    judged = judge(CHECK, evidence, enough_data=True, short_reason="")
    assert judged.result.result is Result.FAIL
    assert math.isinf(judged.result.details["ratio_estimate"])
    assert "inf" in judged.result.reason


def test_no_errors_anywhere_is_no_evidence_either_way() -> None:
    evidence = update(CHECK, Evidence(), Counts(500, 0, 4500, 0))
    judged = judge(CHECK, evidence, enough_data=True, short_reason="")
    assert judged.result.result is Result.PASS
    assert judged.result.details["e_value"] == pytest.approx(1)
    assert not judged.shown_not_worse


def test_no_data_is_inconclusive_never_a_pass() -> None:
    judged = judge(CHECK, Evidence(), enough_data=False, short_reason="not enough data: x")
    assert judged.result.result is Result.INCONCLUSIVE
    assert judged.result.reason == "not enough data: x"


def test_equal_rates_with_plenty_of_errors_show_the_canary_not_worse() -> None:
    evidence = Evidence()
    for _ in range(40):
        evidence = update(CHECK, evidence, Counts(5000, 50, 5000, 50))
    judged = judge(CHECK, evidence, enough_data=True, short_reason="")
    assert judged.shown_not_worse
    assert "shown not worse than +25%" in judged.result.reason


def test_evidence_survives_storage() -> None:
    evidence = update(CHECK, Evidence(), Counts(100, 5, 900, 4))
    assert Evidence.from_storage(evidence.for_storage()) == evidence


def window_of(
    start: float, end: float, canary: tuple[float, float], base: tuple[float, float]
) -> Measurement:
    return Measurement(
        Window(start, end),
        VersionSample(canary[0], canary[1]),
        VersionSample(base[0], base[1]),
    )


def test_evaluate_takes_increments_and_carries_evidence_across_windows() -> None:
    strategy = CanaryStrategy(checks=(SequentialErrorRateCheck(),), min_requests=10)
    first = evaluate(window_of(0, 10, (50, 3), (450, 0)), strategy)
    # Same window, cumulative counts grew: only the growth is new evidence.
    second = evaluate(
        window_of(0, 20, (100, 6), (900, 0)), strategy, Memory.from_storage(first.memory)
    )
    totals = Memory.from_storage(second.memory).evidence["error_rate"].totals
    assert (totals.canary_requests, totals.canary_errors) == (100, 6)
    # A new window (next step) starts counting from zero but keeps the evidence.
    third = evaluate(
        window_of(30, 40, (50, 3), (50, 0)), strategy, Memory.from_storage(second.memory)
    )
    totals = Memory.from_storage(third.memory).evidence["error_rate"].totals
    assert (totals.canary_requests, totals.canary_errors) == (150, 9)
    assert third.result is Result.FAIL


def test_each_check_rejects_at_its_own_alpha_whatever_the_other_checks_say() -> None:
    from safeship.config import LatencyJudgeCheck

    # Each statistical check holds its own share of the false-rollback budget, so a
    # failure stands on its own: no other check's calm can overrule it.
    seq = SequentialErrorRateCheck(alpha=0.05)
    buckets = ((0.05, 500.0), (0.1, 900.0), (math.inf, 1000.0))
    measurement = Measurement(
        Window(0, 60),
        VersionSample(1000, 10, buckets),
        VersionSample(1000, 10, buckets),
    )
    # Evidence of 30: above 1/alpha = 20; no new counts in this look.
    harm = tuple(math.log(30) for _ in harm_grid(seq))
    memory = Memory(
        window_start=0,
        seen=Snapshot(VersionSample(1000, 10, buckets), VersionSample(1000, 10, buckets)),
        evidence={"error_rate": Evidence(harm=harm, max_log_harm=math.log(30))},
    )
    alone = evaluate(measurement, CanaryStrategy(checks=(seq,), min_requests=10), memory)
    assert alone.result is Result.FAIL
    both = CanaryStrategy(checks=(seq, LatencyJudgeCheck()), min_requests=10)
    beside = evaluate(measurement, both, memory)
    assert beside.result is Result.FAIL
    assert [c.result for c in beside.checks] == [Result.FAIL, Result.PASS]


@pytest.mark.parametrize("stored_points", [1, 12, 16])
def test_evidence_stored_on_another_grid_restarts_and_keeps_its_maximum(
    stored_points: int,
) -> None:
    # A rollout paused before an upgrade (or a changed detect_increase) resumed with a grid of
    # another length: every look raised ValueError (zip), the rollout was rolled back as
    # provider_error and the catastrophe guard's result was lost with it.
    old = Evidence.from_storage(
        {"harm": [2.0] * stored_points, "safe": [0.5] * 7, "max_log_harm": 3.0}
    )
    judged = judge(CHECK, old, enough_data=True, short_reason="")
    assert judged.result.result is Result.PASS
    assert judged.result.details["p_value"] == pytest.approx(math.exp(-3.0))
    evidence = update(CHECK, old, Counts(100, 10, 900, 0))
    assert len(evidence.harm) == len(harm_grid(CHECK))
    assert evidence.max_log_harm >= 3.0  # what was seen still counts
    for _ in range(3):
        evidence = update(CHECK, evidence, Counts(100, 10, 900, 1))
    assert judge(CHECK, evidence, enough_data=True, short_reason="").result.result is Result.FAIL


@pytest.mark.parametrize(
    "stored",
    [
        {"harm": [float("nan")] * 10, "max_log_harm": float("nan")},
        {"harm": [float("inf")] * 10, "max_log_harm": float("inf")},
        {"harm": ["2.0"] * 10, "max_log_harm": "3"},
        {"harm": "oops", "safe": None},
    ],
)
def test_stored_evidence_that_is_not_numbers_is_no_evidence_never_a_pass_by_nan(
    stored: dict[str, object],
) -> None:
    evidence = Evidence.from_storage(stored)
    judged = judge(CHECK, evidence, enough_data=True, short_reason="")
    assert not math.isnan(judged.result.details["e_value"])
    assert judged.result.details["p_value"] == 1.0
    harmed = update(CHECK, evidence, Counts(100, 30, 900, 2))
    assert judge(CHECK, harmed, enough_data=True, short_reason="").result.result is Result.FAIL


def test_counts_near_the_largest_float_stay_finite() -> None:
    # theta * n_c + n_b overflowed to inf: e = nan, a PASS, and NaN in the evidence for good.
    evidence = update(CHECK, Evidence(), Counts(1e307, 1, 9e307, 0))
    assert all(math.isfinite(h) for h in evidence.harm)
    assert all(math.isfinite(v) for v in evidence.safe)
    assert math.isfinite(
        judge(CHECK, evidence, enough_data=True, short_reason="").result.details["e_value"]
    )
    skipped = update(CHECK, Evidence(), Counts(100, float("inf"), 900, 0))
    assert skipped.harm == tuple(0.0 for _ in harm_grid(CHECK))
