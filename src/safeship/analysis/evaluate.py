"""One look at a step: every check that may look now, corrected for testing several at once.

A step's figures arrive as cumulative counts since the step began (its
weight was confirmed), as often as the provider has fresh ones. Each look is
one of three kinds:

    tick    fresh figures: the catastrophe guard, the crash-loop rule and the
            anytime-valid sequential tests look (none of them needs a warm-up:
            errors are errors from the first request on, and an anytime-valid
            test may be looked at as often as figures change);
    settle  a tick that marks the end of the warm-up: the *settled* window,
            which latency and threshold checks judge, starts here;
    full    an interval look: every check, and the verdict is what the
            rollout's policy decides on.

Threshold checks compare the settled window's figures with limits. The
statistical checks are anytime-valid tests, each at its own `alpha`: its
share of the rollout's false-rollback budget, which is their sum (1% with
the defaults: 0.9% for errors, 0.1% for latency). A rollout stops at its first
rejection, where Holm's step-down is no more powerful than this split, and an
explicit split lets the error test, which decides most rollbacks, keep most
of the budget. A check marked `critical: false` is reported but never rolls
back.

Figures that cannot be true (negative, NaN, infinite, beyond any real
traffic) are no evidence: the look is inconclusive and names them. The
sequential tests and the guard consume increments between looks, never raw
totals, and what they need travels in `Memory`, stored with the rollout
state so a resumed rollout keeps its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from safeship.analysis import guard as catastrophe
from safeship.analysis import sequential, slow_share
from safeship.analysis.figures import Refusals, clamp_errors, refusals, without_latency
from safeship.analysis.latency import judge_latency_sequentially
from safeship.analysis.threshold import histogram_quantile, threshold_check
from safeship.analysis.verdict import P95, CheckResult, Result, Verdict, combine
from safeship.config import (
    CanaryStrategy,
    ErrorRateCheck,
    LatencyCheck,
    LatencyJudgeCheck,
    SequentialErrorRateCheck,
)
from safeship.providers.interface import Measurement, VersionSample, Window


class Look(StrEnum):
    TICK = "tick"
    SETTLE = "settle"
    FULL = "full"


@dataclass(frozen=True)
class Snapshot:
    """Cumulative figures of both versions at one look of a step."""

    canary: VersionSample = field(default_factory=lambda: VersionSample(0.0, 0.0))
    baseline: VersionSample = field(default_factory=lambda: VersionSample(0.0, 0.0))

    def counts(self) -> sequential.Counts:
        return sequential.Counts(
            self.canary.requests, self.canary.errors, self.baseline.requests, self.baseline.errors
        )

    def for_storage(self) -> dict[str, Any]:
        return {
            "canary": _sample_for_storage(self.canary),
            "baseline": _sample_for_storage(self.baseline),
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Snapshot:
        return cls(_sample_from_storage(data["canary"]), _sample_from_storage(data["baseline"]))


@dataclass(frozen=True)
class Memory:
    """What the next look needs: the step's figures so far, the settled window's start, evidence."""

    window_start: float | None = None
    seen: Snapshot = field(default_factory=Snapshot)
    settled: Snapshot | None = None
    settled_at: float | None = None
    evidence: dict[str, sequential.Evidence] = field(default_factory=dict)
    guard: catastrophe.GuardState = field(default_factory=catastrophe.GuardState)
    latency: dict[str, slow_share.SlowShareEvidence] = field(default_factory=dict)

    def for_storage(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start,
            "seen": self.seen.for_storage(),
            "settled": None if self.settled is None else self.settled.for_storage(),
            "settled_at": self.settled_at,
            "evidence": {k: v.for_storage() for k, v in self.evidence.items()},
            "guard": self.guard.for_storage(),
            "latency": {k: v.for_storage() for k, v in self.latency.items()},
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any] | None) -> Memory:
        if not data:
            return cls()
        seen = data.get("seen")
        settled = data.get("settled")
        return cls(
            window_start=data.get("window_start"),
            # Rollouts stored before snapshots kept four counts only: start their step afresh.
            seen=Snapshot.from_storage(seen) if isinstance(seen, dict) else Snapshot(),
            settled=Snapshot.from_storage(settled) if isinstance(settled, dict) else None,
            settled_at=data.get("settled_at"),
            evidence={
                k: sequential.Evidence.from_storage(v) for k, v in data.get("evidence", {}).items()
            },
            guard=catastrophe.GuardState.from_storage(data.get("guard")),
            latency={
                k: slow_share.SlowShareEvidence.from_storage(v)
                for k, v in data.get("latency", {}).items()
            },
        )


@dataclass(frozen=True)
class _Outcome:
    result: CheckResult
    critical: bool
    shown_not_worse: bool | None = None
    harm_suspected: bool = False
    harm_likely: bool = False


def evaluate(
    measurement: Measurement,
    strategy: CanaryStrategy,
    memory: Memory | None = None,
    *,
    look: Look = Look.FULL,
) -> Verdict:
    """Judge one look at a step of canary vs. baseline; the verdict carries the next memory.

    Without memory the whole window counts as settled (no warm-up to leave out).
    """
    memory = memory or Memory()
    if memory.window_start != measurement.window.start:
        memory = replace(
            memory,
            window_start=measurement.window.start,
            seen=Snapshot(),
            settled=None,
            settled_at=None,
        )
    refused = refusals(measurement)
    if refused.counts or refused.resets:
        return _inconclusive(strategy, measurement, memory, refused)
    if refused.latency:
        measurement = without_latency(measurement)  # the counts still judge, the guard looks
    now = Snapshot(clamp_errors(measurement.canary), clamp_errors(measurement.baseline))
    increment = now.counts().minus(memory.seen.counts())
    # What the next look counts from: a refused histogram leaves the last sound one, so
    # the next sound look's latency increment covers this look too, and nothing twice.
    remembered = now
    if refused.latency:
        remembered = Snapshot(
            replace(now.canary, latency_buckets=memory.seen.canary.latency_buckets),
            replace(now.baseline, latency_buckets=memory.seen.baseline.latency_buckets),
        )
    # Latency counts from the end of the warm-up: not before it is marked (a whole window
    # judged at once, or a strategy without warm-up, is settled from its start), not at
    # the look that marks it (nothing in the settled window yet), and not from a refused
    # histogram (the next sound look catches up; it also marks the warm-up's end).
    settling = look is Look.SETTLE and memory.settled is None and not refused.latency
    latency_counts = (
        not refused.latency
        and not settling
        and (memory.settled is not None or look is Look.FULL or strategy.warmup == 0)
    )
    latency_increment = (
        _since(now.canary, memory.seen.canary),
        _since(now.baseline, memory.seen.baseline),
    )
    if settling:
        memory = replace(memory, settled=now, settled_at=measurement.window.end)
    guard_state = catastrophe.update(strategy.guard, memory.guard, increment)
    step = now.counts()
    short = _short_of_data(step, strategy.min_requests)
    settled_window: Window | None = None
    window_figures: tuple[VersionSample, VersionSample] | None = None
    settled_short: str | None = None
    if look is Look.FULL:
        start = memory.settled or Snapshot()
        settled_window = Window(
            memory.settled_at or measurement.window.start, measurement.window.end
        )
        window_figures = (_since(now.canary, start.canary), _since(now.baseline, start.baseline))
        settled_short = _short_of_data(Snapshot(*window_figures).counts(), strategy.min_requests)

    outcomes: list[_Outcome] = []
    evidence = dict(memory.evidence)
    latency = dict(memory.latency)
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
                    judged.shown_not_worse,
                    judged.harm_suspected,
                    judged.harm_likely,
                )
            )
        elif isinstance(check, LatencyJudgeCheck):
            known = latency.get(check.name, slow_share.SlowShareEvidence())
            if latency_counts:
                known = slow_share.update(
                    check, known, *(_buckets_of(sample) for sample in latency_increment)
                )
                latency[check.name] = known
            elif look is not Look.FULL:
                continue  # warming up: latency does not look yet
            judgement = judge_latency_sequentially(
                check, known, window_figures, settled_short if look is Look.FULL else short
            )
            outcomes.append(_Outcome(judgement, check.critical))
        elif window_figures is not None:  # a full look
            assert isinstance(check, ErrorRateCheck | LatencyCheck)
            outcomes.append(_settled_outcome(check, *window_figures, settled_short))
    checks = tuple(o.result for o in outcomes)
    urgent, urgent_check = _urgent(strategy, guard_state, measurement)
    if urgent_check is not None:
        checks = (urgent_check, *checks)
    if refused.latency:
        checks = (*checks, _refused_check(refused.latency))
    # Non-critical checks are reported but never roll back; alone, they still need data.
    deciding = tuple(o.result for o in outcomes if o.critical) or tuple(
        replace(o.result, result=Result.PASS) if o.result.result is Result.FAIL else o.result
        for o in outcomes
    )
    result = Result.FAIL if urgent else combine(deciding)
    restarted = measurement.canary.resets > 0
    early = (
        result is Result.PASS
        and look is Look.FULL
        and not restarted  # a restart lost requests: they cannot count as a clean record
        and any(o.shown_not_worse for o in outcomes)
        and all(o.shown_not_worse is not False for o in outcomes if o.critical)
    )
    return Verdict(
        result=result,
        reason=urgent_check.reason if urgent_check else _summary(result, checks),
        window=measurement.window,
        checks=checks,
        canary_requests=step.canary_requests,
        baseline_requests=step.baseline_requests,
        canary_errors=step.canary_errors,
        baseline_errors=step.baseline_errors,
        queries=dict(measurement.queries),
        shown_not_worse=early,
        harm_suspected=any(o.harm_suspected for o in outcomes if o.critical),
        harm_likely=any(o.harm_likely for o in outcomes if o.critical),
        next_memory=Memory(
            measurement.window.start,
            remembered,
            memory.settled,
            memory.settled_at,
            evidence,
            guard_state,
            latency,
        ),
        urgent=urgent,
        look=look.value,
        settled_window=settled_window,
        canary_resets=measurement.canary.resets,
        baseline_resets=measurement.baseline.resets,
        p95=None if window_figures is None else _p95(*window_figures),
    )


def _p95(canary: VersionSample, baseline: VersionSample) -> P95 | None:
    """Both versions' p95 over the settled window, for people to read (no check uses it)."""
    estimated = bool(canary.latency_buckets or baseline.latency_buckets)
    c = histogram_quantile(0.95, _buckets_of(canary))
    b = histogram_quantile(0.95, _buckets_of(baseline))
    return None if c is None and b is None else P95(c, b, estimated)


def _urgent(
    strategy: CanaryStrategy, guard_state: catastrophe.GuardState, measurement: Measurement
) -> tuple[str | None, CheckResult | None]:
    """A rollback no policy may delay: a crash loop, or the catastrophe guard's alarm."""
    crash = _crash_loop(strategy, measurement)
    if crash is not None:
        return "crash_loop", crash
    alarm = catastrophe.judge(strategy.guard, guard_state)
    if alarm is not None:
        return "high_error_rate", alarm
    return None, None


def _crash_loop(strategy: CanaryStrategy, measurement: Measurement) -> CheckResult | None:
    """The crash-loop rule: more canary restarts in the step than `limits.max_restarts`."""
    restarts = measurement.canary.resets
    limit = strategy.limits.max_restarts
    if restarts > limit:
        reason = (
            f"crash loop: the canary's counters reset {restarts} times in this step (each a "
            f"restart that lost the requests in flight), more than limits.max_restarts {limit}; "
            f"the baseline's reset {measurement.baseline.resets} times"
        )
        check = CheckResult(
            name="crash_loop",
            kind="crash_loop",
            result=Result.FAIL,
            reason=reason,
            canary=float(restarts),
            baseline=float(measurement.baseline.resets),
            limit=float(limit),
            details={"canary_resets": restarts, "baseline_resets": measurement.baseline.resets},
        )
        return check
    return None


def _settled_outcome(
    check: ErrorRateCheck | LatencyCheck,
    canary: VersionSample,
    baseline: VersionSample,
    short: str | None,
) -> _Outcome:
    if short is not None:
        return _Outcome(
            CheckResult(check.name, check.type, Result.INCONCLUSIVE, short), check.critical
        )
    return _Outcome(threshold_check(check, canary, baseline), check.critical)


def _buckets_of(sample: VersionSample) -> tuple[tuple[float, float], ...]:
    if sample.latency_buckets:
        return sample.latency_buckets
    return slow_share.buckets_of_samples(sample.latency_samples)


def _inconclusive(
    strategy: CanaryStrategy, measurement: Measurement, memory: Memory, refused: Refusals
) -> Verdict:
    """Counts that cannot be true: no evidence is taken from them, the memory stays as it was.

    Sound resets still tell a crash loop, which rolls back whatever else is refused.
    """
    check = _refused_check(refused.all())
    crash = None if refused.resets else _crash_loop(strategy, measurement)
    return Verdict(
        result=Result.FAIL if crash else Result.INCONCLUSIVE,
        reason=crash.reason if crash else check.reason,
        window=measurement.window,
        checks=(crash, check) if crash else (check,),
        queries=dict(measurement.queries),
        next_memory=memory,
        urgent="crash_loop" if crash else None,
        canary_resets=measurement.canary.resets,
        baseline_resets=measurement.baseline.resets,
    )


def _refused_check(problems: tuple[str, ...]) -> CheckResult:
    reason = "figures refused: " + "; ".join(problems)
    return CheckResult(
        name="figures",
        kind="figures",
        result=Result.INCONCLUSIVE,
        reason=reason,
        details={"problems": list(problems)},
    )


def _since(now: VersionSample, start: VersionSample) -> VersionSample:
    """The figures between two cumulative snapshots (raw samples only over a whole window)."""
    if start.requests == 0 and not start.latency_buckets:
        return now
    return VersionSample(
        requests=max(0.0, now.requests - start.requests),
        errors=max(0.0, now.errors - start.errors),
        latency_buckets=_bucket_difference(now.latency_buckets, start.latency_buckets),
        resets=max(0, now.resets - start.resets),
    )


def _bucket_difference(
    now: tuple[tuple[float, float], ...], start: tuple[tuple[float, float], ...]
) -> tuple[tuple[float, float], ...]:
    before = dict(start)
    running = 0.0
    out = []
    for le, count in now:
        # Cumulative counts stay cumulative: extrapolation noise must not make them dip.
        running = max(running, count - before.get(le, 0.0), 0.0)
        out.append((le, running))
    return tuple(out)


def _short_of_data(counts: sequential.Counts, minimum: int) -> str | None:
    lacking = [
        f"{name} {requests:.0f} < {minimum} requests"
        for name, requests in (
            ("canary", counts.canary_requests),
            ("baseline", counts.baseline_requests),
        )
        if not requests >= minimum  # NaN counts as lacking
    ]
    return f"not enough data: {', '.join(lacking)}" if lacking else None


def _summary(result: Result, checks: tuple[CheckResult, ...]) -> str:
    chosen = [c for c in checks if c.result is result] or list(checks)
    return "; ".join(f"{c.name}: {c.reason}" for c in chosen) or "no checks configured"


def _sample_for_storage(sample: VersionSample) -> dict[str, Any]:
    return {
        "requests": sample.requests,
        "errors": sample.errors,
        "buckets": [list(pair) for pair in sample.latency_buckets],
        "resets": sample.resets,
    }


def _sample_from_storage(data: dict[str, Any]) -> VersionSample:
    return VersionSample(
        requests=float(data.get("requests", 0.0)),
        errors=float(data.get("errors", 0.0)),
        latency_buckets=tuple((float(le), float(c)) for le, c in data.get("buckets", ())),
        resets=int(data.get("resets", 0)),
    )
