"""The rollout state machine: immutable state, transitions that return a new state.

The controller stores the state after every transition, so any process can
pick a rollout up where another left it. Weight changes are two-phase: a
transition first records the target weight (SHIFTING, PROMOTING,
ROLLING_BACK), the router is told, and only the confirmed read-back completes
the transition. A crash between the two leaves a recorded intent that
`resume` finishes.

`decide` is the policy: given the state, the latest verdict and the strategy,
what happens next. It is pure, so hours of rollout run in virtual time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from safeship.analysis.verdict import Result, Verdict
from safeship.config import Action, CanaryStrategy
from safeship.errors import RolloutStateError


class Phase(StrEnum):
    PENDING = "pending"  # created: hooks and smoke tests not yet passed, no traffic moved
    SHIFTING = "shifting"  # next step's weight recorded, not yet confirmed by the router
    HOLDING = "holding"  # at a step's weight, analysing
    PROMOTING = "promoting"  # weight 100 recorded, not yet confirmed
    ROLLING_BACK = "rolling_back"  # decision recorded, weight 0 not yet confirmed
    PAUSED = "paused"  # waiting for a person: promote, abort or resume
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"


LATENCY_KINDS = frozenset({"latency", "latency_judge"})
TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED})
ACTIVE = frozenset({Phase.PENDING, Phase.SHIFTING, Phase.HOLDING, Phase.PROMOTING, Phase.PAUSED})


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    ABORTED = "aborted"
    FAILED = "failed"


class Reason(StrEnum):
    """Why a rollout was rolled back (the `reason` label of deployment_rollback_total)."""

    SMOKE_TEST_FAILED = "smoke_test_failed"
    HIGH_ERROR_RATE = "high_error_rate"
    HIGH_LATENCY = "high_latency"
    CRASH_LOOP = "crash_loop"
    PROVIDER_ERROR = "provider_error"
    NO_DATA = "no_data"
    ROUTER_ERROR = "router_error"
    HOOK_FAILED = "hook_failed"
    MANUAL = "manual"
    INTERRUPTED = "interrupted"


class DecisionAction(StrEnum):
    CONTINUE = "continue"
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    PAUSE = "pause"


@dataclass(frozen=True)
class Decision:
    """What to do after a verdict, and why, in words a person reads."""

    action: DecisionAction
    explanation: str
    reason: Reason | None = None


@dataclass(frozen=True)
class RolloutState:
    """Everything needed to continue a rollout in another process."""

    deployment_id: str
    service: str
    environment: str
    version: str
    steps: tuple[int, ...]
    started_at: float
    updated_at: float
    phase: Phase = Phase.PENDING
    step_index: int = -1
    weight: int = 0
    peak_weight: int = 0  # the highest weight the canary was confirmed at
    target_weight: int | None = None
    step_started_at: float | None = None
    failures: int = 0
    consecutive_errors: int = 0
    reason: Reason | None = None
    detail: str = ""
    paused_at: float | None = None
    final: Phase | None = None  # where ROLLING_BACK ends: ROLLED_BACK or ABORTED
    # The analysis' memory (e.g. sequential evidence), kept across looks, steps and resumes.
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Which slot takes the canary and which serves the stable version (`Placement`),
    # recorded before anything moves; empty for rollouts stored before placements were.
    placement: dict[str, Any] = dataclasses.field(default_factory=dict)

    # --- queries ---------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @property
    def outcome(self) -> Outcome | None:
        """The rollout outcome so far (None while still running)."""
        return {
            Phase.PROMOTED: Outcome.PROMOTED,
            Phase.ROLLED_BACK: Outcome.ROLLED_BACK,
            Phase.ABORTED: Outcome.ABORTED,
            Phase.FAILED: Outcome.FAILED,
            Phase.PAUSED: Outcome.PAUSED,
        }.get(self.phase)

    # --- transitions -------------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        deployment_id: str,
        service: str,
        environment: str,
        version: str,
        steps: tuple[int, ...],
        at: float,
        placement: dict[str, Any] | None = None,
    ) -> RolloutState:
        return cls(
            deployment_id=deployment_id,
            service=service,
            environment=environment,
            version=version,
            steps=steps,
            started_at=at,
            updated_at=at,
            placement=placement or {},
        )

    def _to(self, allowed: frozenset[Phase], at: float, **changes: Any) -> RolloutState:
        if self.phase not in allowed:
            names = ", ".join(sorted(p.value for p in allowed))
            raise RolloutStateError(
                f"rollout {self.deployment_id} is {self.phase.value}; this needs one of: {names}"
            )
        return dataclasses.replace(self, updated_at=at, **changes)

    def shift_to_next_step(self, at: float) -> RolloutState:
        """Record the next step's weight; the last step (100) is promotion."""
        if self.step_index + 1 >= len(self.steps):
            raise RolloutStateError(f"rollout {self.deployment_id} has no step after the last")
        nxt = self.step_index + 1
        phase = Phase.PROMOTING if nxt == len(self.steps) - 1 else Phase.SHIFTING
        return self._to(
            frozenset({Phase.PENDING, Phase.HOLDING}),
            at,
            phase=phase,
            step_index=nxt,
            target_weight=self.steps[nxt],
        )

    def promote_now(self, at: float) -> RolloutState:
        """A person skips the remaining steps: record weight 100."""
        return self._to(
            frozenset({Phase.HOLDING, Phase.PAUSED}),
            at,
            phase=Phase.PROMOTING,
            step_index=len(self.steps) - 1,
            target_weight=100,
            paused_at=None,
            detail="promoted by hand",
        )

    def applied(self, weight: int, at: float) -> RolloutState:
        """A promotion's or rollback's weight is in force; its hooks have yet to run."""
        if weight != self.target_weight:
            raise RolloutStateError(
                f"router reports weight {weight}, rollout {self.deployment_id} must reach "
                f"exactly {self.target_weight}"
            )
        return self._to(
            frozenset({Phase.PROMOTING, Phase.ROLLING_BACK}),
            at,
            weight=weight,
            peak_weight=max(self.peak_weight, weight),
        )

    def weight_confirmed(
        self, weight: int, at: float, achievable: int | None = None
    ) -> RolloutState:
        """The router confirmed the recorded target weight, or the nearest it can achieve.

        `achievable` is what the router can put in force for the target (a
        replica-based split only approximates it); the state records the
        weight really in force.
        """
        expected = self.target_weight if achievable is None else achievable
        if weight != expected or self.target_weight is None:
            raise RolloutStateError(
                f"router reports weight {weight}, rollout {self.deployment_id} expected {expected}"
            )
        if self.target_weight in (0, 100) and weight != self.target_weight:
            raise RolloutStateError(
                f"router reports weight {weight}, rollout {self.deployment_id} must reach "
                f"exactly {self.target_weight}"
            )
        if self.phase is Phase.SHIFTING:
            return self._to(
                frozenset({Phase.SHIFTING}),
                at,
                phase=Phase.HOLDING,
                weight=weight,
                peak_weight=max(self.peak_weight, weight),
                target_weight=None,
                step_started_at=at,
                failures=0,
                consecutive_errors=0,
            )
        if self.phase is Phase.PROMOTING:
            return self._to(
                frozenset({Phase.PROMOTING}),
                at,
                phase=Phase.PROMOTED,
                weight=weight,
                peak_weight=max(self.peak_weight, weight),
                target_weight=None,
            )
        return self._to(
            frozenset({Phase.ROLLING_BACK}),
            at,
            phase=self.final or Phase.ROLLED_BACK,
            weight=weight,
            target_weight=None,
        )

    def observed(self, verdict: Verdict, at: float) -> RolloutState:
        """Count a verdict: failures per step, errors consecutively."""
        failures = self.failures + (verdict.result is Result.FAIL)
        errors = self.consecutive_errors + 1 if verdict.result is Result.ERROR else 0
        return self._to(
            frozenset({Phase.HOLDING}),
            at,
            failures=failures,
            consecutive_errors=errors,
            analysis=verdict.memory or self.analysis,  # a failed read leaves the evidence as is
        )

    def rollback(self, reason: Reason, detail: str, at: float) -> RolloutState:
        """Record the decision to send the canary no traffic."""
        return self._to(
            ACTIVE | {Phase.ROLLING_BACK},
            at,
            phase=Phase.ROLLING_BACK,
            target_weight=0,
            reason=reason,
            detail=detail,
            final=Phase.ROLLED_BACK,
        )

    def abort(self, detail: str, at: float) -> RolloutState:
        """A person stops the rollout; like a rollback, but the outcome is `aborted`."""
        return self._to(
            ACTIVE | {Phase.ROLLING_BACK},
            at,
            phase=Phase.ROLLING_BACK,
            target_weight=0,
            reason=Reason.MANUAL,
            detail=detail,
            final=Phase.ABORTED,
        )

    def refuse(self, detail: str, at: float) -> RolloutState:
        """Before any traffic moved, the canary could not be verified: the rollout fails."""
        return self._to(frozenset({Phase.PENDING}), at, phase=Phase.FAILED, detail=detail)

    def placed(self, placement: dict[str, Any], at: float) -> RolloutState:
        """The slots learnt: the stable version seen before traffic, or, for a rollout
        recorded before placements were, the router's slots when it was next touched."""
        return self._to(ACTIVE | {Phase.ROLLING_BACK}, at, placement=placement)

    def pause(self, reason: Reason | None, detail: str, at: float) -> RolloutState:
        """Wait for a person; `reason` is what a timed-out pause rolls back for."""
        return self._to(
            frozenset({Phase.HOLDING}),
            at,
            phase=Phase.PAUSED,
            reason=reason,
            detail=detail,
            paused_at=at,
        )

    def resume(self, at: float) -> RolloutState:
        """Continue a paused rollout: its step's hold and analysis window start again."""
        phase = Phase.PENDING if self.step_index < 0 else Phase.HOLDING
        return self._to(
            frozenset({Phase.PAUSED}),
            at,
            phase=phase,
            step_started_at=at if phase is Phase.HOLDING else None,
            paused_at=None,
            failures=0,
            consecutive_errors=0,
            reason=None,
            detail="resumed",
        )

    def restart_hold(self, at: float) -> RolloutState:
        """After a crash mid-hold the analysis window is lost: hold the step again from now."""
        return self._to(
            frozenset({Phase.HOLDING}), at, step_started_at=at, failures=0, consecutive_errors=0
        )

    # --- storage -----------------------------------------------------------------

    def for_storage(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["steps"] = list(self.steps)
        for key in ("phase", "reason", "final"):
            value = data[key]
            data[key] = value.value if value is not None else None
        return data

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> RolloutState:
        """The state as saved; a damaged one (a key missing, a value of the wrong kind) is a
        `RolloutStateError` naming the rollout and the key, never a bare KeyError."""
        name = data.get("deployment_id", "?") if isinstance(data, dict) else "?"
        fields = dataclasses.fields(cls)
        required = [
            f.name
            for f in fields
            if f.name == "phase"  # every state ever saved has one; never guess it
            or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        ]
        missing = [key for key in required if not isinstance(data, dict) or key not in data]
        if missing:
            raise RolloutStateError(_damaged(name, f"missing {', '.join(map(repr, missing))}"))
        values = {k: v for k, v in data.items() if k in {f.name for f in fields}}
        try:
            values["steps"] = tuple(int(step) for step in values["steps"])
            values["phase"] = Phase(values["phase"])
            values["reason"] = Reason(values["reason"]) if values.get("reason") else None
            values["final"] = Phase(values["final"]) if values.get("final") else None
        except (TypeError, ValueError) as exc:
            raise RolloutStateError(_damaged(name, str(exc))) from exc
        return cls(**values)


def _damaged(deployment_id: str, problem: str) -> str:
    return (
        f"the stored state of rollout {deployment_id!r} is damaged ({problem}); it was edited "
        "by hand or written by another safeship version: check the router by hand, and "
        "`safeship rollout list` for the record"
    )


def decide(
    state: RolloutState, verdict: Verdict, strategy: CanaryStrategy, held: float
) -> Decision:
    """The policy: what a (counted) verdict means for a rollout `held` seconds into its step.

    `held` is measured on a monotonic clock, so a step of the wall clock never
    shortens a hold. An urgent verdict (a crash loop, the catastrophe guard)
    rolls back at once, whatever the limits say. A step advances only on a
    passing verdict once its hold is over; a failure past `failure_limit`, or
    provider errors reaching `consecutive_errors`, trigger their configured
    action; not enough data when the hold ends never advances.
    """
    limits = strategy.limits
    hold_over = held >= strategy.hold
    if verdict.urgent is not None:
        return Decision(DecisionAction.ROLLBACK, verdict.reason, Reason(verdict.urgent))
    if verdict.result is Result.FAIL:
        failed = verdict.failed_checks()
        reason = (
            Reason.HIGH_LATENCY
            if failed and all(c.kind in LATENCY_KINDS for c in failed)
            else Reason.HIGH_ERROR_RATE
        )
        if state.failures > limits.failure_limit:
            return _act(
                limits.on_failure,
                f"{state.failures} failed measurement(s) > failure_limit {limits.failure_limit}: "
                f"{verdict.reason}",
                reason,
            )
        return Decision(
            DecisionAction.CONTINUE,
            f"failed measurement {state.failures} of {limits.failure_limit} tolerated: "
            f"{verdict.reason}",
        )
    if verdict.result is Result.ERROR:
        if state.consecutive_errors >= limits.consecutive_errors:
            return _act(
                limits.on_error,
                f"{state.consecutive_errors} consecutive provider errors "
                f"(limit {limits.consecutive_errors}): {verdict.reason}",
                Reason.PROVIDER_ERROR,
            )
        return Decision(
            DecisionAction.CONTINUE,
            f"provider error {state.consecutive_errors} of {limits.consecutive_errors}, "
            f"retrying: {verdict.reason}",
        )
    if not hold_over:
        if verdict.result is Result.PASS and verdict.shown_not_worse and held >= strategy.min_hold:
            return Decision(
                DecisionAction.ADVANCE,
                f"advancing early after {held:.0f}s at {state.weight}% (min_hold "
                f"{strategy.min_hold:g}s): {verdict.reason}",
            )
        return Decision(DecisionAction.CONTINUE, f"{verdict.result.value}: {verdict.reason}")
    if verdict.result is Result.INCONCLUSIVE:
        return _act(
            limits.on_inconclusive,
            f"hold of {strategy.hold:g}s ended without a conclusive verdict: {verdict.reason}",
            Reason.NO_DATA,
        )
    # Steps advance while no evidence of harm is found; suspected harm holds the step for
    # up to one more hold, at the weight where each failed request says most, in which it
    # is proven (rollback) or fades (advance).
    if verdict.harm_suspected and held < 2 * strategy.hold:
        return Decision(
            DecisionAction.CONTINUE,
            f"holding {state.weight}% past the hold: harm suspected: {verdict.reason}",
        )
    if verdict.harm_likely:
        return _act(
            limits.on_suspected_harm,
            f"harm still likely after twice the hold ({2 * strategy.hold:g}s): {verdict.reason}",
            Reason.HIGH_ERROR_RATE,
        )
    # A window that opened late (the provider failed at first) must still be long enough.
    needed = min(strategy.min_hold, strategy.hold - strategy.warmup)
    analysed = verdict.settled_window or verdict.window
    if analysed.seconds < needed:
        return Decision(
            DecisionAction.CONTINUE,
            f"pass over only {analysed.seconds:.0f}s of analysis; a step advances on at "
            f"least {needed:g}s: {verdict.reason}",
        )
    return Decision(
        DecisionAction.ADVANCE,
        f"hold of {strategy.hold:g}s passed at {state.weight}%: {verdict.reason}",
    )


def _act(action: Action, explanation: str, reason: Reason) -> Decision:
    if action is Action.ROLLBACK:
        return Decision(DecisionAction.ROLLBACK, explanation, reason)
    return Decision(DecisionAction.PAUSE, explanation, reason)
