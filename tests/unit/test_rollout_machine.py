"""The pure rollout state machine and its decision policy."""

from __future__ import annotations

import pytest

from safeship.analysis.verdict import CheckResult, Result, Verdict
from safeship.config import CanaryStrategy, Limits
from safeship.errors import RolloutStateError
from safeship.providers.interface import Window
from safeship.rollout.machine import DecisionAction, Phase, Reason, RolloutState, decide

STRATEGY = CanaryStrategy(hold=300, limits=Limits(failure_limit=0, consecutive_errors=3))


def holding(at: float = 0.0) -> RolloutState:
    state = RolloutState.new(
        deployment_id="d1", service="s", environment="e", version="v2", steps=(10, 50, 100), at=at
    )
    return state.shift_to_next_step(at).weight_confirmed(10, at)


def verdict(result: Result, kind: str = "error_rate", seconds: float = 290) -> Verdict:
    checks = (CheckResult(kind, kind, result, "because"),)
    return Verdict(result, "because", Window(10, 10 + seconds), checks)


def test_new_rollout_is_pending_with_no_traffic() -> None:
    state = RolloutState.new(
        deployment_id="d1", service="s", environment="e", version="v", steps=(10, 100), at=5
    )
    assert (state.phase, state.weight, state.step_index) == (Phase.PENDING, 0, -1)


def test_weight_change_is_recorded_before_it_is_confirmed() -> None:
    state = RolloutState.new(
        deployment_id="d1", service="s", environment="e", version="v", steps=(10, 100), at=0
    ).shift_to_next_step(1)
    assert (state.phase, state.weight, state.target_weight) == (Phase.SHIFTING, 0, 10)
    state = state.weight_confirmed(10, 2)
    assert (state.phase, state.weight, state.step_started_at) == (Phase.HOLDING, 10, 2)


def test_last_step_is_promotion() -> None:
    state = holding().shift_to_next_step(1).weight_confirmed(50, 1).shift_to_next_step(2)
    assert (state.phase, state.target_weight) == (Phase.PROMOTING, 100)
    assert state.weight_confirmed(100, 3).phase is Phase.PROMOTED


def test_confirmation_of_a_different_weight_is_refused() -> None:
    with pytest.raises(RolloutStateError, match="expected 50"):
        holding().shift_to_next_step(1).weight_confirmed(10, 2)


def test_terminal_rollouts_refuse_transitions() -> None:
    done = holding().rollback(Reason.MANUAL, "x", 1).weight_confirmed(0, 2)
    assert done.phase is Phase.ROLLED_BACK
    with pytest.raises(RolloutStateError, match="rolled_back"):
        done.shift_to_next_step(3)
    with pytest.raises(RolloutStateError):
        done.pause(None, "x", 3)


def test_abort_ends_as_aborted_not_rolled_back() -> None:
    state = holding().abort("stop", 1).weight_confirmed(0, 2)
    assert (state.phase, state.reason) == (Phase.ABORTED, Reason.MANUAL)


def test_state_round_trips_through_storage() -> None:
    state = holding().rollback(Reason.HIGH_LATENCY, "slow", 4)
    assert RolloutState.from_storage(state.for_storage()) == state


def test_resume_restarts_the_hold_from_now() -> None:
    paused = holding(at=0).pause(Reason.NO_DATA, "quiet", 100)
    resumed = paused.resume(500)
    assert (resumed.phase, resumed.step_started_at, resumed.reason) == (Phase.HOLDING, 500, None)


def test_failure_beyond_limit_rolls_back_with_reason_from_the_check() -> None:
    state = holding().observed(verdict(Result.FAIL, "latency"), 20)
    decision = decide(state, verdict(Result.FAIL, "latency"), STRATEGY, 20)
    assert (decision.action, decision.reason) == (DecisionAction.ROLLBACK, Reason.HIGH_LATENCY)


def test_pass_before_hold_ends_continues_and_after_advances() -> None:
    state = holding(at=0)
    assert decide(state, verdict(Result.PASS), STRATEGY, 299).action is DecisionAction.CONTINUE
    assert decide(state, verdict(Result.PASS), STRATEGY, 300).action is DecisionAction.ADVANCE


def test_no_data_never_advances() -> None:
    state = holding(at=0)
    decision = decide(state, verdict(Result.INCONCLUSIVE), STRATEGY, 300)
    assert (decision.action, decision.reason) == (DecisionAction.PAUSE, Reason.NO_DATA)


def test_errors_count_consecutively_and_reset_on_a_measurement() -> None:
    state = holding()
    for t in (1, 2):
        state = state.observed(verdict(Result.ERROR), t)
        assert decide(state, verdict(Result.ERROR), STRATEGY, t).action is DecisionAction.CONTINUE
    state = state.observed(verdict(Result.PASS), 3)
    assert state.consecutive_errors == 0
    for t in (4, 5, 6):
        state = state.observed(verdict(Result.ERROR), t)
    decision = decide(state, verdict(Result.ERROR), STRATEGY, 6)
    assert (decision.action, decision.reason) == (DecisionAction.ROLLBACK, Reason.PROVIDER_ERROR)


def test_error_action_can_be_pause() -> None:
    strategy = CanaryStrategy(limits=Limits(consecutive_errors=1, on_error="pause"))
    state = holding().observed(verdict(Result.ERROR), 1)
    assert decide(state, verdict(Result.ERROR), strategy, 1).action is DecisionAction.PAUSE


def test_a_pass_over_a_window_shorter_than_min_hold_does_not_advance() -> None:
    state = holding(at=0)
    late = verdict(Result.PASS, seconds=15)  # the window opened late: provider was down
    decision = decide(state, late, STRATEGY, 300)
    assert decision.action is DecisionAction.CONTINUE
    assert "advances on at least 60s" in decision.explanation
    assert decide(state, verdict(Result.PASS, seconds=60), STRATEGY, 345).action is (
        DecisionAction.ADVANCE
    )


def suspected(seconds: float = 290, *, likely: bool = False) -> Verdict:
    checks = (CheckResult("error_rate", "error_rate_sequential", Result.PASS, "suspicious"),)
    return Verdict(
        Result.PASS,
        "suspicious",
        Window(10, 10 + seconds),
        checks,
        harm_suspected=True,
        harm_likely=likely,
    )


def test_suspected_harm_holds_the_step_past_its_hold_instead_of_advancing() -> None:
    state = holding(at=0)
    decision = decide(state, suspected(), STRATEGY, 300)
    assert decision.action is DecisionAction.CONTINUE
    assert "harm suspected" in decision.explanation


def test_harm_still_likely_after_twice_the_hold_rolls_back_by_default() -> None:
    state = holding(at=0)
    decision = decide(state, suspected(590, likely=True), STRATEGY, 600)
    assert (decision.action, decision.reason) == (DecisionAction.ROLLBACK, Reason.HIGH_ERROR_RATE)
    careful = CanaryStrategy(hold=300, limits=Limits(on_suspected_harm="pause"))
    assert decide(state, suspected(590, likely=True), careful, 600).action is DecisionAction.PAUSE


def test_a_mere_suspicion_that_outlasts_twice_the_hold_advances() -> None:
    # Suspicion (evidence of 2) is no proof: it buys the step time, it never rolls back.
    decision = decide(holding(at=0), suspected(590), STRATEGY, 600)
    assert decision.action is DecisionAction.ADVANCE


def test_a_step_advances_early_when_the_canary_is_shown_not_worse_after_min_hold() -> None:
    checks = (CheckResult("error_rate", "error_rate_sequential", Result.PASS, "fine"),)
    safe = Verdict(Result.PASS, "fine", Window(10, 60), checks, shown_not_worse=True)
    assert decide(holding(at=0), safe, STRATEGY, 50).action is DecisionAction.CONTINUE
    assert decide(holding(at=0), safe, STRATEGY, 60).action is DecisionAction.ADVANCE
