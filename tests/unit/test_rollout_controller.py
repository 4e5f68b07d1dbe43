"""The rollout controller in virtual time: hours of rollout in milliseconds, real SQLite store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    Hook,
    Hooks,
    Limits,
    LocalRouterSettings,
    ScrapeProviderSettings,
    SmokeTest,
    StoreSettings,
)
from safeship.errors import (
    RollbackIncompleteError,
    RolloutLockedError,
    RolloutRefusedError,
    RolloutStateError,
    RouterError,
)
from safeship.placement import Placement, SlotVersion
from safeship.rollout.controller import RolloutController, RolloutEvent
from safeship.rollout.machine import Outcome, Phase, Reason, RolloutState
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord, Store
from safeship.testing import FakeRouter, SyntheticProvider, Traffic

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield s
    s.close()


def settings(
    strategy: CanaryStrategy | None = None,
    *,
    hooks: Hooks | None = None,
    smoke_tests: tuple[SmokeTest, ...] = (),
) -> EnvironmentConfig:
    return EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=strategy or CanaryStrategy(),
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=smoke_tests,
        hooks=hooks or Hooks(),
        store=StoreSettings(),
    )


class World:
    """A controller wired to a fake router and synthetic traffic on a virtual clock."""

    def __init__(
        self,
        store: Store,
        env: EnvironmentConfig,
        *,
        rps: float = 100.0,
        canary: Traffic | None = None,
        baseline: Traffic | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.router = FakeRouter()
        self.provider = SyntheticProvider(
            self.router, self.clock, rps=rps, canary=canary, baseline=baseline
        )
        self.events: list[RolloutEvent] = []
        self.store = store
        self.env = env
        self.controller = self.new_controller()

    def new_controller(self) -> RolloutController:
        """A fresh controller over the same store and router: another process."""
        return RolloutController(
            self.env,
            store=self.store,
            router=self.router,
            provider=self.provider,
            clock=self.clock,
            on_event=self.events.append,
        )


def test_healthy_canary_is_promoted_through_every_step(store: Store) -> None:
    world = World(store, settings())
    state = world.controller.start("v2")
    assert state.outcome is Outcome.PROMOTED
    assert world.router.history == [10, 50, 100]
    record = store.get_deployment(state.deployment_id)
    assert record is not None
    assert record.outcome == "promoted"
    assert record.max_weight == 100
    # Two holds of 300 s, each judged every 10 s after a 10 s warm-up.
    assert record.duration == pytest.approx(600, abs=1)


def test_hours_of_rollout_run_in_virtual_time(store: Store) -> None:
    strategy = CanaryStrategy(steps=(1, 2, 5, 10, 25, 50, 100), hold=HOUR, interval=60)
    world = World(store, settings(strategy), rps=50)
    state = world.controller.start("v2")
    assert state.outcome is Outcome.PROMOTED
    assert world.clock.now() - state.started_at == pytest.approx(6 * HOUR, abs=1)


def test_error_rate_regression_rolls_back_to_weight_zero_with_reason(store: Store) -> None:
    world = World(store, settings(), canary=Traffic(error_ratio=0.05))
    state = world.controller.start("v2")
    assert state.outcome is Outcome.ROLLED_BACK
    assert state.reason is Reason.HIGH_ERROR_RATE
    assert world.router.weight == 0
    assert world.router.history == [10, 0]
    record = store.get_deployment(state.deployment_id)
    assert record is not None
    assert (record.outcome, record.reason) == ("rolled_back", "high_error_rate")


def test_rollback_decision_is_stored_with_its_inputs(store: Store) -> None:
    world = World(store, settings(), canary=Traffic(error_ratio=0.05))
    state = world.controller.start("v2")
    rollback = [d for d in store.decisions(state.deployment_id) if d.action == "rollback"]
    assert len(rollback) == 1
    inputs = rollback[0].inputs
    verdict = inputs["verdict"]
    assert verdict["result"] == "fail"
    # Proof needs no minimum sample: the anytime-valid test looked at every fresh figure.
    assert verdict["look"] == "tick"
    assert verdict["samples"]["canary_requests"] > 0
    check = next(c for c in verdict["checks"] if c["name"] == "error_rate")
    assert check["kind"] == "error_rate_sequential"
    assert check["canary"] == pytest.approx(0.05)
    assert check["baseline"] == 0
    assert check["details"]["e_value"] >= check["details"]["e_threshold"]
    assert verdict["queries"] == {"canary": "synthetic", "baseline": "synthetic"}
    assert inputs["decision"]["reason"] == "high_error_rate"
    assert inputs["step"]["weight"] == 10


def test_latency_regression_rolls_back_as_high_latency(store: Store) -> None:
    world = World(store, settings(), canary=Traffic(latency=0.3), baseline=Traffic(latency=0.02))
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.HIGH_LATENCY)


def test_windows_never_reach_before_the_step_and_latency_leaves_out_the_warmup(
    store: Store,
) -> None:
    world = World(store, settings())
    state = world.controller.start("v2")
    verdicts = [d for d in store.decisions(state.deployment_id) if "verdict" in d.inputs]
    assert verdicts
    for decision in verdicts:
        step = decision.inputs["step"]
        verdict = decision.inputs["verdict"]
        # Errors count from the step's first request: the error test needs no warm-up.
        assert verdict["window"]["start"] >= step["started_at"]
        # Latency and threshold checks judge only what came after the warm-up.
        assert verdict["settled_window"]["start"] >= step["started_at"] + step["warmup"]


def test_too_little_traffic_pauses_at_hold_end_and_never_advances(store: Store) -> None:
    # 100 rps x 10% = 10 canary rps; min_requests 5000 is never reached in one hold.
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    state = world.controller.start("v2")
    assert state.phase is Phase.PAUSED
    assert state.outcome is Outcome.PAUSED
    assert world.router.history == [10]
    assert "without a conclusive verdict" in state.detail
    record = store.get_deployment(state.deployment_id)
    assert record is not None
    assert (record.outcome, record.finished_at) == (None, None)  # unfinished, not a final outcome
    stored = store.load_state(state.deployment_id)
    assert stored is not None
    assert stored["phase"] == "paused"


def test_inconclusive_can_be_configured_to_roll_back_as_no_data(store: Store) -> None:
    strategy = CanaryStrategy(min_requests=5000, limits=Limits(on_inconclusive="rollback"))
    state = World(store, settings(strategy)).controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.NO_DATA)


def test_provider_outage_rolls_back_after_consecutive_error_limit(store: Store) -> None:
    world = World(store, settings())
    world.provider.outage = True
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.PROVIDER_ERROR)
    errors = [d for d in store.decisions(state.deployment_id) if d.result == "error"]
    assert len(errors) == 5  # the default consecutive-error limit, then the action


def test_provider_errors_that_recover_do_not_roll_back(store: Store) -> None:
    world = World(store, settings())
    outages = iter([True, True, True, True] + [False] * 1000)

    original = world.provider.measure

    def flaky(window):  # type: ignore[no-untyped-def]
        world.provider.outage = next(outages)
        return original(window)

    world.provider.measure = flaky  # type: ignore[method-assign]
    state = world.controller.start("v2")
    assert state.outcome is Outcome.PROMOTED


def test_failure_limit_tolerates_that_many_failed_measurements(store: Store) -> None:
    strategy = CanaryStrategy(limits=Limits(failure_limit=2))
    world = World(store, settings(strategy), canary=Traffic(error_ratio=0.05))
    state = world.controller.start("v2")
    assert state.outcome is Outcome.ROLLED_BACK
    fails = [d for d in store.decisions(state.deployment_id) if d.result == "fail"]
    assert [d.action for d in fails] == ["continue", "continue", "rollback"]


def test_router_failure_on_shift_rolls_back_as_router_error(store: Store) -> None:
    world = World(store, settings())
    world.router.fail_next = 3  # every attempt of the first shift
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.ROUTER_ERROR)
    assert world.router.weight == 0


def test_failed_smoke_test_ends_rollout_before_traffic_moves(store: Store) -> None:
    smoke = SmokeTest(name="probe", command=(sys.executable, "-c", "raise SystemExit(3)"))
    world = World(store, settings(smoke_tests=(smoke,)))
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.SMOKE_TEST_FAILED)
    assert world.router.history == [0]
    results = store.smoke_tests(deployment_id=state.deployment_id)
    assert [(r.name, r.passed) for r in results] == [("probe", False)]
    assert "exit 3" in results[0].detail


def test_failed_pre_rollout_hook_ends_rollout_as_hook_failed(store: Store) -> None:
    hook = Hook(command=(sys.executable, "-c", "import sys; sys.exit(1)"))
    world = World(store, settings(hooks=Hooks(pre_rollout=(hook,))))
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.HOOK_FAILED)
    assert max(world.router.history) == 0


def test_hooks_get_the_rollout_identity_in_their_environment(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = (
        "import os, sys; keys = ['SAFESHIP_DEPLOYMENT_ID', 'SAFESHIP_SERVICE', "
        "'SAFESHIP_ENVIRONMENT', 'SAFESHIP_VERSION', 'SAFESHIP_WEIGHT']; "
        "open(sys.argv[1], 'a').write(' '.join(os.environ[k] for k in keys) + '\\n')"
    )
    hook = Hook(command=(sys.executable, "-c", script, str(out)))
    hooks = Hooks(pre_rollout=(hook,), pre_promotion=(hook,), post_promotion=(hook,))
    state = World(store, settings(hooks=hooks)).controller.start("v2")
    lines = out.read_text().splitlines()
    dep = state.deployment_id
    assert lines == [
        f"{dep} checkout production v2 0",
        f"{dep} checkout production v2 50",
        f"{dep} checkout production v2 100",
    ]


def test_hooks_are_told_the_slots_of_the_rollout(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    names = ("CANARY_SLOT", "CANARY_ADDRESS", "STABLE_SLOT", "STABLE_ADDRESS", "STABLE_VERSION")
    script = (
        "import os, sys; open(sys.argv[1], 'a').write(' '.join(os.environ.get('SAFESHIP_' + n, "
        f"'-') for n in {names!r}) + '\\n')"
    )
    hook = Hook(command=(sys.executable, "-c", script, str(out)))
    world = World(store, settings(hooks=Hooks(pre_rollout=(hook,))))
    world.router.addresses = {"blue": "10.0.0.5:8080", "green": "10.0.0.6:8080"}
    world.controller.start("v2")
    world.controller.start("v3")
    assert out.read_text().splitlines() == [
        "green 10.0.0.6:8080 blue 10.0.0.5:8080 -",  # nothing promoted yet: version unknown
        "blue 10.0.0.5:8080 green 10.0.0.6:8080 v2",
    ]


class ReplicaRouter(FakeRouter):
    """Splits by whole pods out of 3, as the Kubernetes replicas mode does."""

    def achievable_weight(self, weight: int) -> int:
        pods = min(max(round(3 * weight / 100), 1 if weight else 0), 3 if weight == 100 else 2)
        return round(100 * pods / 3)

    def get_weight(self) -> int:
        return self.achievable_weight(self.weight)


def test_weights_are_confirmed_against_what_the_router_can_achieve(store: Store) -> None:
    world = World(store, settings())
    world.router = ReplicaRouter()
    world.provider.router = world.router
    state = world.new_controller().start("v2")
    assert state.outcome is Outcome.PROMOTED
    assert world.router.history == [10, 50, 100]
    weights = [e.state.weight for e in world.events if e.kind == "weight"]
    assert weights == [33, 67, 100]


def test_shell_hook_runs_only_when_asked(store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hook = Hook(command=f"echo $SAFESHIP_VERSION > {marker}", shell=True)
    World(store, settings(hooks=Hooks(pre_rollout=(hook,)))).controller.start("v9")
    assert marker.read_text().strip() == "v9"


def test_hook_timeout_is_a_failure(store: Store) -> None:
    hook = Hook(command=(sys.executable, "-c", "import time; time.sleep(5)"), timeout=0.2)
    state = World(store, settings(hooks=Hooks(pre_rollout=(hook,)))).controller.start("v2")
    assert state.reason is Reason.HOOK_FAILED
    assert "timed out" in state.detail


def test_paused_rollout_resumes_in_a_new_process_and_promotes(store: Store) -> None:
    world = World(store, settings(CanaryStrategy(min_requests=1500)), rps=40)
    paused = world.controller.start("v2")
    assert paused.phase is Phase.PAUSED
    world.provider.rps = 1000  # traffic is back
    state = world.new_controller().resume(paused.deployment_id)
    assert state.outcome is Outcome.PROMOTED
    assert world.router.history == [10, 50, 100]


def test_paused_rollout_can_be_promoted_by_hand(store: Store) -> None:
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")
    state = world.new_controller().promote(paused.deployment_id)
    assert state.outcome is Outcome.PROMOTED
    assert world.router.history[-1] == 100
    assert world.router.slots().stable.name == "green"
    actions = [d.action for d in store.decisions(paused.deployment_id)]
    assert "promote" in actions


def test_a_new_rollout_is_refused_while_another_is_unfinished(store: Store) -> None:
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")
    with pytest.raises(RolloutLockedError, match=f"unfinished rollout {paused.deployment_id}"):
        world.new_controller().start("v3")
    assert [r.version for r in store.list_deployments()] == ["v2"]
    world.new_controller().abort(paused.deployment_id)
    assert world.new_controller().start("v3").outcome is Outcome.PAUSED


def test_a_canary_slot_with_traffic_is_refused_before_anything_is_recorded(store: Store) -> None:
    world = World(store, settings())
    world.router.weight = 10  # left by hand, or by a promotion that never recorded its swap
    with pytest.raises(RolloutRefusedError, match="canary slot green has weight 10, not 0"):
        world.controller.start("v2")
    assert store.list_deployments() == []
    assert world.router.history == []


def test_metrics_of_another_version_in_the_canary_slot_are_refused_before_traffic(
    store: Store,
) -> None:
    world = World(store, settings())
    world.provider.versions = lambda: {"canary": frozenset({"v1"})}  # type: ignore[method-assign]
    with pytest.raises(RolloutRefusedError, match="should be v2 but its series carry version v1"):
        world.controller.start("v2")
    (record,) = store.list_deployments()
    assert record.outcome == "failed"
    assert world.router.history == []  # no traffic moved
    del world.provider.versions  # the right processes now
    assert world.new_controller().start("v3").outcome is Outcome.PROMOTED  # nothing left locked


def test_every_ending_releases_the_lock_so_the_next_takes_over_from_nobody(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(store, settings())
    world.router.weight = 10
    with pytest.raises(RolloutRefusedError):  # an ending by an exception
        world.controller.start("v2")
    world.router.weight = 0
    world.provider.canary = Traffic(error_ratio=0.3)
    assert world.new_controller().start("v3").outcome is Outcome.ROLLED_BACK
    world.provider.canary = Traffic()
    assert world.new_controller().start("v4").outcome is Outcome.PROMOTED
    assert "took over the rollout lock" not in caplog.text


def test_a_rollout_that_died_before_its_first_state_does_not_block_the_next(
    store: Store,
) -> None:
    store.create_deployment(
        DeploymentRecord(
            id="ghost", service="checkout", environment="production", version="v1", started_at=0
        )
    )
    state = World(store, settings()).controller.start("v2")
    assert state.outcome is Outcome.PROMOTED
    ghost = store.get_deployment("ghost")
    assert ghost is not None
    assert ghost.outcome == "failed"


def test_a_new_rollout_is_refused_while_another_process_holds_the_lock(store: Store) -> None:
    world = World(store, settings())
    with (
        store.rollout_lock("checkout", "production", "elsewhere", 0.0),
        pytest.raises(RolloutLockedError, match="rollout elsewhere"),
    ):
        world.controller.start("v2")
    assert store.list_deployments() == []
    assert world.controller.start("v2").outcome is Outcome.PROMOTED


def test_an_abort_from_another_process_wins_over_the_running_rollout(store: Store) -> None:
    world = World(store, settings())
    aborted = False

    def abort_once_holding(event: RolloutEvent) -> None:
        nonlocal aborted
        if event.kind == "weight" and event.state.weight == 50 and not aborted:
            aborted = True  # a person in another terminal: its own controller, same store
            world.new_controller().abort(event.state.deployment_id, "stopped by a person")

    world.controller.on_event = abort_once_holding
    state = world.controller.start("v2")
    assert state.outcome is Outcome.ABORTED
    assert world.router.weight == 0
    assert world.router.history[-1] == 0
    assert 100 not in world.router.history
    phases = [s["phase"] for _, s in store.state_history(state.deployment_id)]
    assert phases[-1] == "aborted"


def test_abort_sets_weight_zero_and_is_safe_to_repeat(store: Store) -> None:
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")
    state = world.new_controller().abort(paused.deployment_id)
    assert (state.outcome, state.reason) == (Outcome.ABORTED, Reason.MANUAL)
    assert world.router.weight == 0
    again = world.new_controller().abort(paused.deployment_id)
    assert again.outcome is Outcome.ABORTED


def test_pause_timeout_applies_its_action_when_nobody_answers(store: Store) -> None:
    strategy = CanaryStrategy(min_requests=5000, pause_timeout=600)
    world = World(store, settings(strategy))
    state = world.controller.start("v2")
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.NO_DATA)
    assert "nobody answered" in state.detail


class Crash(BaseException):
    """Stands in for kill -9: nothing after it in the process runs."""


class CrashingRouter(FakeRouter):
    def __init__(self, crash_on: int) -> None:
        super().__init__()
        self.crash_on = crash_on

    def set_weight(self, weight: int) -> None:
        self._maybe_crash(weight)
        super().set_weight(weight)

    def promote(self, slot: str) -> None:
        self._maybe_crash(0 if slot == self.stable else 100)
        super().promote(slot)

    def _maybe_crash(self, share: int) -> None:
        if share == self.crash_on:
            self.crash_on = -1
            raise Crash


def test_rollback_decision_is_written_before_traffic_moves_and_resume_finishes_it(
    store: Store,
) -> None:
    world = World(store, settings(), canary=Traffic(error_ratio=0.05))
    world.router = CrashingRouter(crash_on=0)
    world.router.weight = 0
    world.provider.router = world.router
    world.controller = world.new_controller()
    with pytest.raises(Crash):
        world.controller.start("v2")
    [record] = store.list_deployments()
    stored = store.load_state(record.id)
    assert stored is not None
    assert (stored["phase"], stored["target_weight"], stored["reason"]) == (
        "rolling_back",
        0,
        "high_error_rate",
    )
    assert world.router.weight == 10  # the crash came before the router was told
    state = world.new_controller().resume(record.id)
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.HIGH_ERROR_RATE)
    assert world.router.weight == 0


def test_resume_after_crash_mid_shift_finishes_the_recorded_shift(store: Store) -> None:
    world = World(store, settings())
    world.router = CrashingRouter(crash_on=50)
    world.provider.router = world.router
    world.controller = world.new_controller()
    with pytest.raises(Crash):
        world.controller.start("v2")
    [record] = store.list_deployments()
    stored = store.load_state(record.id)
    assert stored is not None
    assert (stored["phase"], stored["target_weight"]) == ("shifting", 50)
    state = world.new_controller().resume(record.id)
    assert state.outcome is Outcome.PROMOTED
    assert world.router.history == [10, 50, 100]


def test_resume_after_crash_mid_hold_holds_the_step_again(store: Store) -> None:
    world = World(store, settings())
    measured = 0
    original = world.provider.measure

    def crash_on_fifth(window):  # type: ignore[no-untyped-def]
        nonlocal measured
        measured += 1
        if measured == 5:
            raise Crash
        return original(window)

    world.provider.measure = crash_on_fifth  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.controller.start("v2")
    [record] = store.list_deployments()
    crashed_at = world.clock.now()
    world.clock.advance(120)  # the operator takes two minutes to notice
    state = world.new_controller().resume(record.id)
    assert state.outcome is Outcome.PROMOTED
    history = store.state_history(record.id)
    restarted = [s for at, s in history if at >= crashed_at + 120 and s["phase"] == "holding"]
    assert restarted[0]["step_started_at"] == crashed_at + 120
    assert "resume" in [d.action for d in store.decisions(record.id)]


@pytest.mark.parametrize("crash_on", [10, 50])
def test_resume_rolls_back_an_interrupted_rollout_when_the_policy_says_so(
    store: Store, crash_on: int
) -> None:
    strategy = CanaryStrategy(limits=Limits(on_interrupted="rollback"))
    world = World(store, settings(strategy))
    world.router = CrashingRouter(crash_on=crash_on)
    world.provider.router = world.router
    world.controller = world.new_controller()
    with pytest.raises(Crash):
        world.controller.start("v2")
    [record] = store.list_deployments()
    state = world.new_controller().resume(record.id)
    assert (state.outcome, state.reason) == (Outcome.ROLLED_BACK, Reason.INTERRUPTED)
    assert world.router.weight == 0
    [decision] = [d for d in store.decisions(record.id) if d.action == "rollback"]
    assert "limits.on_interrupted is rollback" in decision.reason


def test_unknown_rollout_is_a_clear_error(store: Store) -> None:
    world = World(store, settings())
    with pytest.raises(RolloutStateError, match="no rollout 'nope'"):
        world.controller.resume("nope")


def test_every_transition_is_stored(store: Store) -> None:
    world = World(store, settings())
    state = world.controller.start("v2")
    phases = [s["phase"] for _, s in store.state_history(state.deployment_id)]
    assert phases[0] == "pending"
    assert phases[-1] == "promoted"
    for expected in ("shifting", "holding", "promoting"):
        assert expected in phases


def test_events_report_progress_for_a_live_view(store: Store) -> None:
    world = World(store, settings())
    world.controller.start("v2")
    kinds = [e.kind for e in world.events]
    assert kinds[0] == "started"
    assert kinds[-1] == "finished"
    assert kinds.count("weight") == 3
    assert any(e.verdict is not None for e in world.events)


def test_unconfirmed_rollback_stays_recorded_and_resume_finishes_it(store: Store) -> None:
    world = World(store, settings(), canary=Traffic(error_ratio=0.05))
    real_promote = world.router.promote

    def router_gone(slot: str) -> None:
        raise RouterError("admin API unreachable")

    world.router.promote = router_gone  # type: ignore[method-assign]
    with pytest.raises(RollbackIncompleteError, match="not confirmed") as info:
        world.controller.start("v2")
    [record] = store.list_deployments()
    assert f"safeship rollout resume {record.id}" in str(info.value)
    stored = store.load_state(record.id)
    assert stored is not None
    assert (stored["phase"], stored["target_weight"]) == ("rolling_back", 0)
    assert record.finished_at is None  # still listed by `rollout status`
    world.router.promote = real_promote  # type: ignore[method-assign]
    state = world.new_controller().resume(record.id)
    assert (state.outcome, world.router.weight) == (Outcome.ROLLED_BACK, 0)


def test_promote_of_an_ended_rollout_is_refused_before_any_hook_runs(
    store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-ran"
    hook = Hook(command=(sys.executable, "-c", f"open({str(marker)!r}, 'w')"))
    world = World(
        store, settings(hooks=Hooks(pre_promotion=(hook,))), canary=Traffic(error_ratio=0.05)
    )
    state = world.controller.start("v2")
    assert state.outcome is Outcome.ROLLED_BACK
    with pytest.raises(RolloutStateError, match="only a holding or paused"):
        world.new_controller().promote(state.deployment_id)
    assert not marker.exists()


def test_a_rollout_resumed_elsewhere_during_the_pause_is_followed_to_its_end(
    store: Store,
) -> None:
    strategy = CanaryStrategy(min_requests=1500, pause_timeout=3600)
    world = World(store, settings(strategy), rps=40)
    other = world.new_controller()
    real_sleep = world.clock.sleep
    resumed = False

    def person_resumes_after_a_while(seconds: float) -> None:
        nonlocal resumed
        real_sleep(seconds)
        [record] = store.list_deployments()
        data = store.load_state(record.id)
        if not resumed and data is not None and data["phase"] == "paused":
            resumed = True
            world.provider.rps = 1000
            other.resume(record.id)

    world.clock.sleep = person_resumes_after_a_while  # type: ignore[method-assign]
    state = world.controller.start("v2")
    assert resumed
    assert state.outcome is Outcome.PROMOTED  # not rolled back at the timeout, not "paused"


def test_secrets_never_reach_stored_records(store: Store) -> None:
    from safeship.config import parse_config

    config = parse_config(
        """
service: checkout
hooks:
  pre_rollout:
    - command: ["python3", "-c", "import sys; sys.exit('token ' + sys.argv[1])", "${API_TOKEN}"]
smoke_tests:
  - name: probe
    http: {url: "http://ci:${PROBE_PASSWORD}@127.0.0.1:9/health"}
""",
        env={"API_TOKEN": "tok-4f9a8c2e", "PROBE_PASSWORD": "pw-77d1c0"},
    )
    env = config.for_environment("production")
    world = World(store, env)
    world.controller.start("v2")
    hook_only = Hooks()
    world.env = env.model_copy(update={"hooks": hook_only})
    world.new_controller().start("v3")
    stored = repr([store.decisions(r.id) for r in store.list_deployments()])
    stored += repr(store.smoke_tests()) + repr([e.message for e in world.events])
    assert "exit 1: token ***" in stored
    assert "ci:***@127.0.0.1" in stored
    assert "tok-4f9a8c2e" not in stored
    assert "pw-77d1c0" not in stored


def test_a_promotion_names_the_slot_it_went_into_so_the_next_goes_into_the_other(
    store: Store,
) -> None:
    world = World(store, settings())
    assert world.controller.start("v2").outcome is Outcome.PROMOTED
    assert world.router.promotions == ["green"]
    assert world.router.slots().stable.name == "green"
    world.provider.canary = Traffic(error_ratio=0.05)
    rolled_back = world.new_controller().start("v3")
    assert rolled_back.outcome is Outcome.ROLLED_BACK
    assert world.router.promotions == ["green", "green"]  # the rollback: all back to green
    placement = Placement.from_storage(rolled_back.placement)
    assert placement == Placement(SlotVersion("blue", None, "v3"), SlotVersion("green", None, "v2"))
    # The history store's side: every change of which version each slot serves.
    history = [
        (a.change, a.stable_slot, a.stable_version, a.canary_slot, a.canary_version)
        for a in reversed(store.slot_history("checkout", "production"))
    ]
    assert history == [
        ("deployed", "blue", None, "green", "v2"),
        ("promoted", "green", "v2", "blue", None),
        ("deployed", "green", "v2", "blue", "v3"),
        ("rolled_back", "green", "v2", "blue", "v3"),
    ]


@pytest.mark.parametrize("meanwhile", ["holding", "promoted"])
def test_an_abort_that_races_the_driver_wins_or_says_how_it_had_ended(
    store: Store, meanwhile: str
) -> None:
    # Once, 2 of 18 aborts lost the race ("changed by another process") and the rollout
    # promoted, while its story said "because: aborted by hand".
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")
    deployment = paused.deployment_id
    aborter = world.new_controller()
    real_save = store.save_state

    def driver_saves_first(deployment_id: str, at: float, data: dict[str, Any], after: int) -> int:
        store.save_state = real_save  # type: ignore[method-assign]
        # The rollout's own process gets its save in just before the abort's.
        newer = dict(data, phase=meanwhile, final=None, reason=None, target_weight=None)
        real_save(deployment_id, at, newer, after=after)
        return real_save(deployment_id, at, data, after=after)

    store.save_state = driver_saves_first  # type: ignore[method-assign]
    state = aborter.abort(deployment)
    actions = [d.action for d in store.decisions(deployment)]
    record = store.get_deployment(deployment)
    assert record is not None
    if meanwhile == "holding":
        assert (state.phase, record.outcome) == (Phase.ABORTED, "aborted")
        assert world.router.weight == 0
        assert actions.count("abort") == 1
    else:
        assert (state.phase, record.outcome) == (Phase.PROMOTED, "promoted")
        assert "abort" not in actions  # the story never says it was aborted


def test_a_promotion_that_loses_to_an_abort_leaves_traffic_on_the_stable_slot(
    store: Store,
) -> None:
    # The rollout's process swaps the slots just after a person's abort finished: its
    # next save conflicts, and it must put the abort's outcome back, by slot, not by weight.
    world = World(store, settings())
    real_promote = world.router.promote
    person = world.new_controller()
    aborted: list[RolloutState] = []

    def promote(slot: str) -> None:
        if slot == "green" and not aborted:
            (record,) = store.list_deployments()
            world.router.promote = real_promote  # type: ignore[method-assign]
            aborted.append(person.abort(record.id))  # runs to its end: blue serves all
        real_promote(slot)  # then the late swap lands

    world.router.promote = promote  # type: ignore[method-assign]
    state = world.controller.start("v2")
    assert aborted[0].phase is Phase.ABORTED
    assert state.phase is Phase.ABORTED
    assert (world.router.slots().stable.name, world.router.weight) == ("blue", 0)


def test_a_promotion_by_hand_that_loses_the_race_follows_the_rollout_and_says_nothing(
    store: Store,
) -> None:
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")
    real_save = store.save_state

    def rollout_rolls_back_first(
        deployment_id: str, at: float, data: dict[str, Any], after: int
    ) -> int:
        store.save_state = real_save  # type: ignore[method-assign]
        rolled_back = dict(data, phase="rolled_back", target_weight=None, reason="no_data")
        real_save(deployment_id, at, rolled_back, after=after)
        return real_save(deployment_id, at, data, after=after)

    store.save_state = rollout_rolls_back_first  # type: ignore[method-assign]
    state = world.new_controller().promote(paused.deployment_id)
    assert state.phase is Phase.ROLLED_BACK
    assert "promote" not in [d.action for d in store.decisions(paused.deployment_id)]
    assert (world.router.slots().stable.name, world.router.weight) == ("blue", 0)


def _paused_before_placements(store: Store, world: World) -> str:
    """What an older safeship left: paused at 10% on green, its state without a placement."""
    world.router.set_weight(10)
    store.create_deployment(
        DeploymentRecord(
            id="old", service="checkout", environment="production", version="v2", started_at=1.0
        )
    )
    data = RolloutState.new(
        deployment_id="old",
        service="checkout",
        environment="production",
        version="v2",
        steps=(10, 50, 100),
        at=1.0,
    ).for_storage()
    data.update(phase="paused", step_index=0, weight=10, peak_weight=10, paused_at=2.0)
    del data["placement"]
    store.save_state("old", 2.0, data, after=0)
    return "old"


def test_a_rollout_from_before_placements_keeps_one_placement_through_its_ending(
    store: Store, tmp_path: Path
) -> None:
    # Once, its slots were read from the router afresh at every step: after the swap a
    # resumed promotion promoted the old stable slot, and v1 served a rollout "promoted".
    world = World(store, settings(hooks=Hooks(post_promotion=(Hook(command=("true",)),))))
    deployment = _paused_before_placements(store, world)
    killer = world.new_controller()
    real_run_hooks = killer._run_hooks

    def killed_in_the_post_promotion_hook(stage: str, hooks: Any, state: RolloutState) -> Any:
        if stage == "post_promotion":
            raise Crash
        return real_run_hooks(stage, hooks, state)

    killer._run_hooks = killed_in_the_post_promotion_hook  # type: ignore[method-assign]
    with pytest.raises(Crash):
        killer.promote(deployment)
    state = world.new_controller().resume(deployment)
    assert state.phase is Phase.PROMOTED
    assert (world.router.slots().stable.name, world.router.weight) == ("green", 0)
    latest = store.slot_history("checkout", "production", limit=1)[0]
    assert (latest.stable_slot, latest.stable_version) == ("green", "v2")


def test_a_pending_rollout_cannot_be_promoted_past_its_checks(store: Store) -> None:
    world = World(store, settings())
    world.controller._prepare = lambda state: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.controller.start("v2")  # killed during its pre-rollout hook
    (record,) = store.list_deployments()
    with pytest.raises(RolloutStateError, match="is pending: its pre-rollout hook"):
        world.new_controller().promote(record.id)
    assert world.router.history == []


def test_a_pending_rollout_whose_slots_moved_is_refused_on_resume(store: Store) -> None:
    world = World(store, settings())
    world.controller._prepare = lambda state: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.controller.start("v2")  # was to deploy into green
    (record,) = store.list_deployments()
    world.router.promote("green")  # meanwhile another rollout promoted into green
    with pytest.raises(RolloutRefusedError, match="the slots changed while it was pending"):
        world.new_controller().resume(record.id)
    assert world.router.promotions == ["green"]  # nothing undone, nothing deployed over
    assert store.get_deployment(record.id).outcome == "failed"  # type: ignore[union-attr]


def test_a_rollback_puts_back_the_stable_slot_it_recorded_whatever_the_router_says(
    store: Store,
) -> None:
    # The record is the truth: a router that disagrees (its state file missing on this
    # machine, a change by hand) is put back as the rollout recorded it, never left
    # with the aborted canary serving.
    world = World(store, settings(CanaryStrategy(min_requests=5000)))
    paused = world.controller.start("v2")  # at 10% on green, blue stable
    world.router.stable = "green"  # the router now claims green stable
    state = world.new_controller().abort(paused.deployment_id)
    assert state.phase is Phase.ABORTED
    assert (world.router.slots().stable.name, world.router.weight) == ("blue", 0)


def test_a_paused_rollouts_watcher_finishes_a_promotion_whose_process_died(
    store: Store,
) -> None:
    # A person's `promote` was killed at its router call while the paused rollout's own
    # process waited on pause_timeout holding the lock: once, that process followed the
    # half-done promotion for ever, and `resume` was locked out.
    world = World(store, settings(CanaryStrategy(min_requests=5000, pause_timeout=HOUR)))
    real_sleep, real_promote = world.clock.sleep, world.router.promote
    person = world.new_controller()

    def killed_at_the_router(slot: str) -> None:
        world.router.promote = real_promote  # type: ignore[method-assign]
        raise Crash

    def sleep(seconds: float) -> None:
        records = store.list_deployments()
        state = store.load_state(records[0].id) if records else None
        if state is not None and state["phase"] == "paused" and not person._seen:
            world.router.promote = killed_at_the_router  # type: ignore[method-assign]
            with pytest.raises(Crash):
                person.promote(records[0].id)
        real_sleep(seconds)

    world.clock.sleep = sleep  # type: ignore[method-assign]
    state = world.controller.start("v2")
    assert state.phase is Phase.PROMOTED
    assert (world.router.slots().stable.name, world.router.weight) == ("green", 0)
