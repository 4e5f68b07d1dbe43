"""Verdicts: what the analysis concluded, with every input needed to explain it later.

No data is never a pass: each check ends in pass, fail, inconclusive (not enough
data, NaN, no series) or error (the provider failed), and the verdict keeps
values, limits, window and sample sizes so a stored decision explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from safeship.providers.interface import Window

if TYPE_CHECKING:
    from safeship.analysis.evaluate import Memory


class Result(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; `canary`, `baseline` and `limit` are in the check's unit."""

    name: str
    kind: str
    result: Result
    reason: str
    canary: float | None = None
    baseline: float | None = None
    limit: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "result": self.result.value,
            "reason": self.reason,
            "canary": self.canary,
            "baseline": self.baseline,
            "limit": self.limit,
            **({"details": self.details} if self.details else {}),
        }


@dataclass(frozen=True)
class P95:
    """Each version's 95th-percentile latency (seconds) over the settled window.

    From histogram buckets it is an estimate (linear within the bucket, as
    Prometheus's `histogram_quantile`), and said so wherever it is shown.
    """

    canary: float | None
    baseline: float | None
    estimated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"canary": self.canary, "baseline": self.baseline, "estimated": self.estimated}


@dataclass(frozen=True)
class Verdict:
    """The combined outcome of all checks over one window."""

    result: Result
    reason: str
    window: Window
    checks: tuple[CheckResult, ...] = ()
    canary_requests: float = 0.0
    baseline_requests: float = 0.0
    canary_errors: float = 0.0
    baseline_errors: float = 0.0
    queries: dict[str, str] = field(default_factory=dict)
    shown_not_worse: bool = False  # every critical check passed and the canary is proven safe
    harm_suspected: bool = False  # some evidence of harm, short of proof: do not advance yet
    harm_likely: bool = False  # strong evidence, short of proof: still there, the policy acts
    # What the next look needs; stored with the rollout state (as `memory`).
    next_memory: Memory | None = None
    # A rollback no policy may delay or soften (the rollback reason), or None.
    urgent: str | None = None
    look: str = "full"  # tick | settle | full (see analysis.evaluate)
    settled_window: Window | None = None  # what latency and threshold checks judged
    canary_resets: int = 0
    baseline_resets: int = 0
    p95: P95 | None = None  # for people: both versions' p95 latency, on full looks

    @property
    def memory(self) -> dict[str, Any]:
        """The next look's memory as stored (empty when this look left none)."""
        return {} if self.next_memory is None else self.next_memory.for_storage()

    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.result is Result.FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "reason": self.reason,
            "window": {
                "start": self.window.start,
                "end": self.window.end,
                "seconds": round(self.window.seconds, 3),
            },
            "samples": {
                "canary_requests": self.canary_requests,
                "canary_errors": self.canary_errors,
                "baseline_requests": self.baseline_requests,
                "baseline_errors": self.baseline_errors,
            },
            "checks": [c.to_dict() for c in self.checks],
            "shown_not_worse": self.shown_not_worse,
            "harm_suspected": self.harm_suspected,
            "harm_likely": self.harm_likely,
            "queries": dict(self.queries),
            "look": self.look,
            "resets": {"canary": self.canary_resets, "baseline": self.baseline_resets},
            **({"p95": self.p95.to_dict()} if self.p95 is not None else {}),
            **({"urgent": self.urgent} if self.urgent else {}),
            **(
                {
                    "settled_window": {
                        "start": self.settled_window.start,
                        "end": self.settled_window.end,
                        "seconds": round(self.settled_window.seconds, 3),
                    }
                }
                if self.settled_window is not None
                else {}
            ),
        }


def combine(results: tuple[CheckResult, ...]) -> Result:
    """A failing check is evidence of harm even when another check lacks data."""
    kinds = {c.result for c in results}
    for result in (Result.FAIL, Result.ERROR, Result.INCONCLUSIVE):
        if result in kinds:
            return result
    return Result.PASS if results else Result.INCONCLUSIVE


def error_verdict(window: Window, message: str) -> Verdict:
    """The verdict for a window whose figures could not be read."""
    return Verdict(result=Result.ERROR, reason=f"provider error: {message}", window=window)
