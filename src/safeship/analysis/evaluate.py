"""One look at a window: every configured check, corrected for testing several at once.

Checks are of two kinds. Threshold checks compare the window's figures with
limits. Statistical checks (the sequential error-rate test, the latency
judge) give p-values; when more than one of them may roll a canary back, a
failure must survive Holm's step-down correction across them, so the
false-rollback rate of the rollout stays at the checks' own levels. A check
marked `critical: false` is reported but never rolls back.

The sequential test needs what earlier looks saw; that memory travels with
the verdict and is stored with the rollout state, so a resumed rollout keeps
its evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from safeship.analysis import sequential
from safeship.analysis.latency import judge_latency
from safeship.analysis.threshold import threshold_check
from safeship.analysis.verdict import CheckResult, Result, Verdict, combine
from safeship.config import (
    CanaryStrategy,
    Check,
    ErrorRateCheck,
    LatencyCheck,
    LatencyJudgeCheck,
    SequentialErrorRateCheck,
)
from safeship.providers.interface import Measurement, VersionSample


@dataclass(frozen=True)
class Memory:
    """What the next look needs: the current window's counts so far, and the evidence."""

    window_start: float | None = None
    seen: sequential.Counts = field(default_factory=sequential.Counts)
    evidence: dict[str, sequential.Evidence] = field(default_factory=dict)

    def for_storage(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start,
            "seen": self.seen.as_list(),
            "evidence": {k: v.for_storage() for k, v in self.evidence.items()},
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any] | None) -> Memory:
        if not data:
            return cls()
        return cls(
            window_start=data.get("window_start"),
            seen=sequential.Counts.from_list(data.get("seen", [0, 0, 0, 0])),
            evidence={
                k: sequential.Evidence.from_storage(v) for k, v in data.get("evidence", {}).items()
            },
        )


@dataclass(frozen=True)
class _Outcome:
    result: CheckResult
    critical: bool
    log_p: float | None = None  # log p-value: evidence can be too strong for a float p
    level: float | None = None
    shown_not_worse: bool | None = None
    harm_suspected: bool = False


def evaluate(
    measurement: Measurement, strategy: CanaryStrategy, memory: Memory | None = None
) -> Verdict:
    """Judge one window of canary vs. baseline; the verdict carries the next memory."""
    memory = memory or Memory()
    canary, baseline = measurement.canary, measurement.baseline
    same_window = memory.window_start == measurement.window.start
    before = memory.seen if same_window else sequential.Counts()
    counts_known = all(
        math.isfinite(v)
        for v in (canary.requests, canary.errors, baseline.requests, baseline.errors)
    )
    # Unknown counts (NaN) are no evidence: this look adds nothing, the next one catches up.
    now_seen = (
        sequential.Counts(canary.requests, canary.errors, baseline.requests, baseline.errors)
        if counts_known
        else before
    )
    increment = now_seen.minus(before)
    short = _short_of_data(canary, baseline, strategy.min_requests)
    if short is None and not counts_known:
        short = "error or request counts unknown (NaN): no evidence either way"

    outcomes: list[_Outcome] = []
    evidence = dict(memory.evidence)
    for check in strategy.checks:
        if isinstance(check, SequentialErrorRateCheck):
            updated = sequential.update(
                check, evidence.get(check.name, sequential.Evidence()), increment
            )
            evidence[check.name] = updated
            judged = sequential.judge(
                check, updated, enough_data=short is None, short_reason=short or ""
            )
            outcomes.append(
                _Outcome(
                    judged.result,
                    check.critical,
                    judged.log_p_value,
                    check.alpha,
                    judged.shown_not_worse,
                    judged.harm_suspected,
                )
            )
        elif short is not None:
            outcomes.append(
                _Outcome(
                    CheckResult(check.name, check.type, Result.INCONCLUSIVE, short), check.critical
                )
            )
        elif isinstance(check, LatencyJudgeCheck):
            latency, log_p = judge_latency(check, canary, baseline)
            tail_only = latency.result is Result.FAIL and latency.details.get(
                "classification"
            ) not in ("High", "Low")
            if tail_only:
                log_p = None  # a tail-ratio failure is a limit, not a test to correct
            outcomes.append(_Outcome(latency, check.critical, log_p, 1 - check.confidence))
        else:
            outcomes.append(_Outcome(_threshold(check, canary, baseline), check.critical))
    outcomes = _holm(outcomes)
    checks = tuple(o.result for o in outcomes)
    # Non-critical checks are reported but never roll back; alone, they still need data.
    deciding = tuple(o.result for o in outcomes if o.critical) or tuple(
        replace(o.result, result=Result.PASS) if o.result.result is Result.FAIL else o.result
        for o in outcomes
    )
    result = combine(deciding)
    early = (
        result is Result.PASS
        and any(o.shown_not_worse for o in outcomes)
        and all(o.shown_not_worse is not False for o in outcomes if o.critical)
    )
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
        shown_not_worse=early,
        harm_suspected=any(o.harm_suspected for o in outcomes if o.critical),
        memory=Memory(measurement.window.start, now_seen, evidence).for_storage(),
    )


def _threshold(check: Check, canary: VersionSample, baseline: VersionSample) -> CheckResult:
    assert isinstance(check, ErrorRateCheck | LatencyCheck)
    return threshold_check(check, canary, baseline)


def _holm(outcomes: list[_Outcome]) -> list[_Outcome]:
    """Holm's step-down across critical statistical checks, each at its own level.

    Ordered by p / level, the i-th of k is rejected only if every one before it
    was and its p <= level / (k - i); a failure that does not survive becomes a
    pass that says so. Everything is compared in log space: the strongest
    evidence has a p-value that underflows to 0, and it must rank first.
    """
    tested = sorted(
        (i for i, o in enumerate(outcomes) if o.critical and o.log_p is not None and o.level),
        key=lambda i: _log_ratio_to_level(outcomes[i]),
    )
    k = len(tested)
    if k < 2:
        return outcomes
    adjusted = list(outcomes)
    still_rejecting = True
    for rank, i in enumerate(tested):
        o = outcomes[i]
        survives = still_rejecting and _log_ratio_to_level(o) <= -math.log(k - rank)
        still_rejecting = survives
        if o.result.result is Result.FAIL and not survives:
            note = f" (not significant after Holm's correction for {k} checks)"
            adjusted[i] = replace(
                o,
                result=replace(
                    o.result,
                    result=Result.PASS,
                    reason=o.result.reason + note,
                    details={**o.result.details, "holm_adjusted": True},
                ),
            )
    return adjusted


def _log_ratio_to_level(outcome: _Outcome) -> float:
    """log(p / level): at most -log(m) when the check is rejected at level / m."""
    assert outcome.log_p is not None
    assert outcome.level is not None
    return outcome.log_p - math.log(outcome.level)


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
