"""The rollout controller: the loop that wires machine, analysis, router, provider and store.

Data flow per step: record the step's weight (write-ahead) -> router sets and
confirms it -> warm-up -> every interval the provider measures canary and
baseline over the window opened after the warm-up, `analysis.evaluate` turns
that into a verdict, `machine.decide` into a decision, which is stored before
it is acted on. The controller owns no policy of its own and reads the time
only from its injected clock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from prometheus_client import CollectorRegistry

from safeship.analysis import Memory, Result, Verdict, error_verdict, evaluate
from safeship.analysis.evaluate import Look
from safeship.clock import Clock
from safeship.config import (
    Action,
    EnvironmentConfig,
    Hook,
    SmokeTest,
    redacted,
    secret_values,
)
from safeship.errors import (
    ConfigError,
    ProviderError,
    RollbackIncompleteError,
    RolloutLockedError,
    RolloutRefusedError,
    RolloutStateError,
    RouterError,
    StateConflictError,
    StoreError,
    StoreUnavailableError,
)
from safeship.http import RetryPolicy, with_retries
from safeship.ids import new_deployment_id
from safeship.metrics import DeploymentMetrics
from safeship.placement import Placement, SlotVersion, variables_in
from safeship.providers.interface import MetricsProvider, Window
from safeship.redact import redact_text
from safeship.rollout.commit_time import CommitTimeMissing
from safeship.rollout.hooks import RunResult, rollout_env, run_hook, run_smoke_test, slot_env
from safeship.rollout.machine import (
    Decision,
    DecisionAction,
    Outcome,
    Phase,
    Reason,
    RolloutState,
    decide,
)
from safeship.routers.interface import Router, Slots
from safeship.store.interface import DecisionRecord, DeploymentRecord, SlotAssignment, Store

log = logging.getLogger("safeship.rollout")

ABORT_ATTEMPTS = 20
"""Loads and saves an abort tries while the rollout's own process keeps saving."""

FOLLOW_GRACE = 120.0
"""Seconds beyond the longest hook a followed rollout may go unchanged before it is taken over."""

MIN_TICK = 0.1
"""Seconds: no provider is read more often than this, whatever it says of its freshness."""


class StoppedWithoutRecordError(StoreError):
    """The history store failed mid-rollout: it stopped where its last record says."""


class SmokeTestFailed(Exception):
    """Tells `track_smoke_test` that the smoke test failed; its text is the detail stored."""


@dataclass
class _Watch:
    """A paused step's window and analysis memory, to go on looking for obvious failure."""

    window_start: float
    opened: float  # monotonic reading when the window opened
    memory: Memory


@dataclass(frozen=True)
class RolloutEvent:
    """Something a person watching the rollout wants to see (for live progress)."""

    kind: str  # started | hook | smoke | weight | verdict | paused | finished
    state: RolloutState
    message: str
    verdict: Verdict | None = None
    decision: Decision | None = None


EventSink = Callable[[RolloutEvent], None]


class RolloutController:
    """Runs, resumes, promotes and aborts rollouts of one service in one environment."""

    def __init__(
        self,
        settings: EnvironmentConfig,
        *,
        store: Store,
        router: Router,
        provider: MetricsProvider,
        clock: Clock,
        metrics: DeploymentMetrics | None = None,
        on_event: EventSink | None = None,
        router_retries: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.strategy = settings.canary
        self.store = store
        self.router = router
        self.provider = provider
        self.clock = clock
        # Smoke tests and live gauges always go through the metrics; a private registry
        # keeps a library user's global one untouched when they pass none.
        self.metrics = metrics or DeploymentMetrics(
            CollectorRegistry(), store, service=settings.service, clock=clock
        )
        self.on_event = on_event
        self.router_retries = router_retries or RetryPolicy(retries=2)
        # The sequence number of the last state of each rollout this controller saw.
        self._seen: dict[str, int] = {}
        # Per paused rollout of this process: what to go on watching while it waits.
        self._watches: dict[str, _Watch] = {}

    # --- entry points ----------------------------------------------------------------

    def start(
        self,
        version: str,
        *,
        deployment_id: str | None = None,
        commit_sha: str | None = None,
        commit_time: float | None = None,
        commit_time_missing: CommitTimeMissing | None = None,
    ) -> RolloutState:
        """Create a rollout of `version` and drive it until it ends or pauses.

        `commit_time` is what lead time counts from; without it, `commit_time_missing`
        says why, for the report (see `safeship.rollout.commit_time`).

        Raises `RolloutLockedError` while another process rolls out the same
        service to the same environment, or one of those rollouts is unfinished.
        """
        now = self.clock.now()
        deployment_id = deployment_id or new_deployment_id(now)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self._exclusive(deployment_id))
                self._refuse_if_unfinished()
                placement = self._place(version)
                self._follow_slots(placement)
                state = self._begin(
                    version, deployment_id, commit_sha, commit_time, commit_time_missing, placement
                )
            except StoreError as exc:
                # Nothing has moved yet: the history store is infrastructure that is not
                # there, like a router that does not answer before the rollout (exit 3).
                raise StoreUnavailableError(
                    f"{exc}; rollout {deployment_id} not started: no traffic moved"
                ) from exc
            return self._drive(state)

    def _place(self, version: str) -> Placement:
        """Where the new version goes: the router must answer, its canary slot carry no traffic.

        The stable slot's version is the last one promoted into it, as recorded.
        """
        slots = ready_slots(self.router, version)
        return placement_of(slots, version, self._stable_version(slots.stable.name))

    def _follow_slots(self, placement: Placement) -> None:
        """Render every template over the slots now, before anything is recorded.

        A template that cannot be filled is a ConfigError (exit 2); its message is
        scrubbed of the config's secrets (a URL may carry a token from ${VAR}).
        """
        try:
            self.provider.follow(placement)
            for test in self.settings.smoke_tests:
                if test.http is not None:
                    placement.render(test.http.url, f"smoke test {test.name} url")
        except ConfigError as exc:
            raise ConfigError(redact_text(str(exc), secret_values(self.settings))) from None

    def _stable_version(self, slot: str) -> str | None:
        """The version the history store says `slot` serves, or None when it does not say.

        Histories from before slot assignments were recorded fall back to the last
        promoted rollout.
        """
        service, environment = self.settings.service, self.settings.environment
        current = self.store.slot_history(service, environment, limit=1)
        if current:
            if current[0].stable_slot == slot:
                return current[0].stable_version
            log.warning(
                "the history store has slot %s stable (%s), the router %s: the stable "
                "version is not known",
                current[0].stable_slot,
                current[0].stable_version,
                slot,
            )
            return None
        for record in self.store.list_deployments(service=service, environment=environment):
            if record.outcome == Outcome.PROMOTED.value:
                return record.version
        return None

    def _record_slots(self, state: RolloutState, change: str) -> None:
        """Which version each slot serves after `change`, in the history store."""
        placement = self._placement(state)
        stable, canary = placement.stable, placement.canary
        if change == "promoted":
            stable, canary = canary, stable
        self.store.record_slots(
            SlotAssignment(
                service=state.service,
                environment=state.environment,
                at=self.clock.now(),
                deployment_id=state.deployment_id,
                change=change,
                stable_slot=stable.slot,
                stable_version=stable.version,
                canary_slot=canary.slot,
                canary_version=canary.version,
            )
        )

    def _refuse_if_unfinished(self) -> None:
        service, environment = self.settings.service, self.settings.environment
        for record in self.store.unfinished_deployments(service, environment):
            stored = self.store.load_state(record.id)
            if stored is None:
                self._close_never_started(record)
                continue
            state = RolloutState.from_storage(stored)
            if state.terminal:
                self._settle_record(state)  # killed between its final state and its row
                continue
            raise RolloutLockedError(
                f"{service}/{environment} has an unfinished rollout {record.id} of "
                f"{record.version} ({stored['phase']} at {stored['weight']}%); one rollout at "
                f"a time: `safeship rollout resume`, `promote` or `abort {record.id}` first"
            )

    def _close_never_started(self, record: DeploymentRecord) -> RolloutState:
        """A rollout whose process died between its deployment row and its first state.

        Under the lock, so that process is gone; it had moved no traffic. It ends
        `failed` with a state saying so, so every command can show it.
        """
        detail = "its process stopped before recording a first state; no traffic had moved"
        state = RolloutState.new(
            deployment_id=record.id,
            service=record.service,
            environment=record.environment,
            version=record.version,
            steps=self.strategy.steps,
            at=record.started_at,
        ).refuse(detail, self.clock.now())
        self._record(state, "close", "failed", detail, {})
        self._save(state)
        log.warning("rollout %s never started (no state recorded): failed", record.id)
        return state

    @contextlib.contextmanager
    def _exclusive(self, deployment_id: str, *, paused: bool = False) -> Iterator[None]:
        """Hold the service/environment's rollout lock for the block.

        A paused rollout may be answered (resume, promote) while its own process
        still holds the lock waiting for that answer: that process follows.
        """
        with contextlib.ExitStack() as stack:
            try:
                previous = stack.enter_context(
                    self.store.rollout_lock(
                        self.settings.service,
                        self.settings.environment,
                        deployment_id,
                        self.clock.now(),
                    )
                )
            except RolloutLockedError:
                if not paused:
                    raise
                previous = None
            if previous is not None:
                log.warning(
                    "took over the rollout lock of %s/%s from rollout %s by %s, which is gone",
                    self.settings.service,
                    self.settings.environment,
                    previous.deployment_id,
                    previous.holder,
                )
            yield

    def _begin(
        self,
        version: str,
        deployment_id: str,
        commit_sha: str | None,
        commit_time: float | None,
        commit_time_missing: CommitTimeMissing | None,
        placement: Placement,
    ) -> RolloutState:
        """Record the new rollout and where it goes; no traffic moves until `_drive`."""
        now = self.clock.now()
        state = RolloutState.new(
            deployment_id=deployment_id,
            service=self.settings.service,
            environment=self.settings.environment,
            version=version,
            steps=self.strategy.steps,
            at=now,
            placement=placement.for_storage(),
        )
        self.store.create_deployment(
            DeploymentRecord(
                id=state.deployment_id,
                service=state.service,
                environment=state.environment,
                version=version,
                started_at=now,
                commit_sha=commit_sha,
                commit_time=commit_time,
                commit_time_missing=commit_time_missing,
            )
        )
        self._record(
            state,
            "start",
            "started",
            f"rollout of {version} through steps {list(state.steps)}",
            {
                "strategy": redacted(self.strategy),
                "router": self.settings.router.type,
                "provider": self.settings.provider.type,
                "placement": placement.for_storage(),
            },
        )
        self._save(state)
        self._record_slots(state, "deployed")
        self._emit(
            "started",
            state,
            f"rolling out {version} as {state.deployment_id}: {placement.describe()}",
        )
        return state

    def _placement(self, state: RolloutState) -> Placement:
        """The rollout's recorded placement (see `_placed` for rollouts from before them)."""
        recorded = Placement.from_storage(state.placement)
        if recorded is not None:
            return recorded
        # Only a rollout that had ended before placements were recorded gets here.
        return placement_of(self.router.slots(), state.version, None)

    def _placed(self, state: RolloutState) -> RolloutState:
        """A rollout recorded before placements were gets one, from the router, once.

        Saved before anything else is done, so every later step (an ending's slot,
        the slot assignment, a resumed ending) uses the same slots however the
        router changes meanwhile.
        """
        if state.terminal or state.placement:
            return state
        slots = self.router.slots()
        placement = placement_of(slots, state.version, self._stable_version(slots.stable.name))
        placed = state.placed(placement.for_storage(), self.clock.now())
        self._save(placed)
        return placed

    def resume(self, deployment_id: str) -> RolloutState:
        """Continue a paused or interrupted rollout from its last stored state."""
        state = self.load(deployment_id)
        with self._exclusive(deployment_id, paused=state.phase is Phase.PAUSED):
            state = self._placed(self.load(deployment_id))
            if not state.terminal:
                self._follow_slots(self._placement(state))
            return self._resume(state)

    def _resume(self, state: RolloutState) -> RolloutState:
        now = self.clock.now()
        if state.phase is Phase.PENDING:
            self._refuse_if_slots_moved(state)
        interrupted = state.phase in (Phase.PENDING, Phase.SHIFTING, Phase.HOLDING)
        if interrupted and self.strategy.limits.on_interrupted == "rollback":
            return self._drive(
                self._rollback(
                    state,
                    Reason.INTERRUPTED,
                    f"the rollout process stopped at {state.phase.value} {state.weight}% and "
                    "limits.on_interrupted is rollback",
                )
            )
        if state.phase is Phase.PAUSED:
            # A person's answer wins, even one given after the pause timeout.
            self._record(state, "resume", "manual", "resumed by hand", {})
            state = state.resume(now)
            self._save(state)
        elif state.phase is Phase.HOLDING:
            self._record(state, "resume", "manual", "resumed after an interruption", {})
            state = state.restart_hold(now)
            self._save(state)
        return self._drive(state)

    def _refuse_if_slots_moved(self, state: RolloutState) -> None:
        """A pending rollout resumed: its canary slot must still be idle and still the canary.

        Another rollout may have promoted into that slot meanwhile; its hook would
        then deploy over the version serving everyone.
        """
        placement = self._placement(state)
        try:
            slots, weight = self.router.slots(), self.router.get_weight()
        except RouterError as exc:
            raise RouterError(f"router not ready to resume {state.deployment_id}: {exc}") from exc
        if (slots.canary.name, slots.stable.name, weight) != (
            placement.canary.slot,
            placement.stable.slot,
            0,
        ):
            self._refuse(
                state,
                f"the slots changed while it was pending: it was to deploy into "
                f"{placement.canary.slot}, and the router now has {slots.stable.name} stable "
                f"and {weight}% on {slots.canary.name}; start a new rollout",
            )

    def promote(self, deployment_id: str) -> RolloutState:
        """A person promotes a paused (or holding) rollout, skipping the remaining steps."""
        state = self.load(deployment_id)
        with self._exclusive(deployment_id, paused=state.phase is Phase.PAUSED):
            return self._promote(self._placed(self.load(deployment_id)))

    def _promote(self, state: RolloutState) -> RolloutState:
        deployment_id = state.deployment_id
        if state.phase is Phase.PENDING:
            # Its pre-rollout hook, smoke tests and checks have not all run: promoting it
            # would put a version nothing verified in front of every user.
            raise RolloutStateError(
                f"rollout {deployment_id} is pending: its pre-rollout hook, smoke tests and "
                f"checks have not run; `safeship rollout resume {deployment_id}` first"
            )
        if state.phase not in (Phase.HOLDING, Phase.PAUSED):
            raise RolloutStateError(
                f"rollout {deployment_id} is {state.phase.value}: only a holding or paused "
                "rollout can be promoted"
            )
        failed = self._run_hooks("pre_promotion", self.settings.hooks.pre_promotion, state)
        if failed is not None:
            return self._rollback(state, Reason.HOOK_FAILED, f"{failed.name}: {failed.detail}")
        promoted = state.promote_now(self.clock.now())
        try:
            self._save(promoted)
        except StateConflictError:
            # The rollout's own process saved first (it rolled back, say): its way wins,
            # and the story never says this promotion happened.
            return self._superseded(deployment_id)
        self._record(promoted, "promote", "manual", "promoted by hand", {})
        return self._drive(promoted)

    def abort(self, deployment_id: str, detail: str = "aborted by hand") -> RolloutState:
        """Send the canary no traffic and end the rollout as `aborted`; safe to repeat."""
        record = self.store.get_deployment(deployment_id)
        if (
            record is not None
            and record.outcome is None
            and not self.store.latest_state(deployment_id)
        ):
            with self._exclusive(deployment_id):
                return self._close_never_started(record)
        # The rollout's own process may save between this load and this save: then load
        # again and abort what it is now. The abort always wins unless the rollout had
        # ended; its decision is recorded only once its state is.
        for _ in range(ABORT_ATTEMPTS):
            state = self.load(deployment_id)
            if state.terminal:
                return state
            try:
                state = self._placed(state)
            except StateConflictError:
                continue
            aborted = state.abort(detail, self.clock.now())
            try:
                self._save(aborted)
            except StateConflictError:
                continue
            self._record(aborted, "abort", "manual", detail, {})
            return self._drive(aborted)
        raise StateConflictError(
            f"rollout {deployment_id} changed {ABORT_ATTEMPTS} times while it was being "
            "aborted; run `safeship rollout abort` again"
        )

    def load(self, deployment_id: str) -> RolloutState:
        """The stored state; later saves by this controller must follow it (compare-and-swap)."""
        latest = self.store.latest_state(deployment_id)
        if latest is None:
            raise RolloutStateError(
                f"no rollout {deployment_id!r} in the history store "
                "(`safeship rollout list` shows the known ones)"
            )
        self._seen[deployment_id] = latest[0]
        state = RolloutState.from_storage(latest[1])
        if state.terminal:
            self._settle_record(state)
        return state

    def _settle_record(self, state: RolloutState) -> None:
        """A final state whose deployment row has no outcome (killed between the two
        writes): the state is the truth, and the row is finished from it."""
        record = self.store.get_deployment(state.deployment_id)
        outcome = state.outcome
        if record is None or record.outcome is not None or outcome is None:
            return
        self.store.update_deployment(
            state.deployment_id,
            outcome=outcome.value,
            reason=state.reason.value if state.reason else None,
            finished_at=state.updated_at,
            max_weight=state.peak_weight,
        )
        log.warning(
            "rollout %s had ended (%s) without its outcome recorded: recorded now",
            state.deployment_id,
            outcome.value,
        )

    # --- the loop ----------------------------------------------------------------------

    def _drive(self, state: RolloutState) -> RolloutState:
        try:
            while not state.terminal and state.phase is not Phase.PAUSED:
                if state.phase is Phase.PENDING:
                    state = self._prepare(state)
                elif state.phase in (Phase.SHIFTING, Phase.PROMOTING, Phase.ROLLING_BACK):
                    state = self._apply_weight(state)
                else:
                    state = self._hold(state)
            if state.phase is Phase.PAUSED:
                state = self._wait_while_paused(state)
        except StateConflictError:
            return self._superseded(state.deployment_id)
        except StoreError as exc:
            if isinstance(exc, StoppedWithoutRecordError):
                raise  # from a nested _drive: already says so
            # No decision is taken, and no traffic moved, without its record: stop here,
            # like an interrupted process, and say where things stand and how to go on.
            raise StoppedWithoutRecordError(
                f"rollout {state.deployment_id} stopped: {exc}; nothing more is decided "
                f"without a record. Last recorded: {state.phase.value} at {state.weight}%; "
                "the router keeps the weight it has. Once the store answers, run "
                f"`safeship rollout resume {state.deployment_id}` (limits.on_interrupted: "
                f"hold the step again or roll back) or `safeship rollout abort "
                f"{state.deployment_id}`"
            ) from exc
        return state

    def _superseded(self, deployment_id: str) -> RolloutState:
        """Another process changed the rollout (a person's abort or promote): go its way.

        This process may have moved traffic after the other did (its save came
        first, its router call last), so the outcome the other recorded is put
        in force again; all of it is idempotent.
        """
        newer = self.load(deployment_id)
        self._emit("superseded", newer, f"changed by another process: now {newer.phase.value}")
        if newer.phase in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.PROMOTED):
            # By slot, never by weight: a weight is relative to whichever slot is stable
            # now, and this process may have swapped them after the other finished.
            placement = self._placement(newer)
            stays = placement.canary if newer.phase is Phase.PROMOTED else placement.stable
            try:
                self.router.promote(stays.slot)
            except RouterError as exc:
                log.warning("could not re-apply %s: %s", newer.phase.value, exc)
            return newer
        if newer.phase is Phase.PAUSED:
            return newer
        # Still moving (the other process is rolling back or promoting, or died doing
        # so): finish it here too; both write the same weight and one records the end.
        return self._drive(newer)

    def _prepare(self, state: RolloutState) -> RolloutState:
        """Pre-rollout hooks and smoke tests: before any traffic moves."""
        failed = self._run_hooks("pre_rollout", self.settings.hooks.pre_rollout, state)
        if failed is not None:
            return self._rollback(state, Reason.HOOK_FAILED, f"{failed.name}: {failed.detail}")
        for test in self.settings.smoke_tests:
            result = self._smoke_test(state, test)
            self._emit("smoke", state, _describe("smoke test", result))
            if not result.passed:
                return self._rollback(
                    state, Reason.SMOKE_TEST_FAILED, f"{result.name}: {result.detail}"
                )
        state = self._verify(state)
        return self._next_step(state)

    def _verify(self, state: RolloutState) -> RolloutState:
        """Before traffic moves: both versions' metrics readable, from the processes meant.

        When request series carry a `version` label, the canary's must be the
        version rolled out and the baseline's the stable one (the one seen is
        recorded when no promotion says which); anything else means the provider
        reads other processes than the slots hold, and the rollout is refused.
        """
        placement = self._placement(state)
        try:
            self.provider.ready()
            seen = self.provider.versions()
            missing = self.provider.missing(placement)
        except ProviderError as exc:
            self._refuse(state, f"metrics not readable before the rollout: {exc}")
        if missing:
            self._refuse(state, "; ".join(missing))
        mismatches = []
        for role, slot in (("canary", placement.canary), ("baseline", placement.stable)):
            versions = seen.get(role, frozenset())
            if versions and slot.version is not None and versions != {slot.version}:
                where = f" at {slot.address}" if slot.address else ""
                mismatches.append(
                    f"the {role} ({'canary' if role == 'canary' else 'stable'} slot "
                    f"{slot.slot}{where}, read from {self.provider.source(role)}) should be "
                    f"{slot.version} but its series carry version {', '.join(sorted(versions))}"
                )
        if mismatches:
            self._refuse(
                state,
                "; ".join(mismatches) + ": the provider reads other processes than the slots "
                "hold (fixed URLs or labels?); use the slot templates, e.g. canary_url: "
                '"http://{{ canary_address }}/metrics"',
            )
        baseline = seen.get("baseline", frozenset())
        if placement.stable.version is None and len(baseline) == 1:
            placement = placement.with_stable_version(next(iter(baseline)))
            state = state.placed(placement.for_storage(), self.clock.now())
            self._save(state)
            self.provider.follow(placement)  # the baseline is now that version, by name
        return state

    def _refuse(self, state: RolloutState, detail: str) -> NoReturn:
        """End a rollout that moved no traffic as failed, and say why (exit 3)."""
        message = f"rollout {state.deployment_id} refused before any traffic moved: {detail}"
        self._record(state, "verify", "refused", message, {})
        refused = state.refuse(message, self.clock.now())
        self._save(refused)
        self._emit("finished", refused, message)
        raise RolloutRefusedError(message)

    def _next_step(self, state: RolloutState) -> RolloutState:
        if state.step_index + 1 == len(state.steps) - 1:
            failed = self._run_hooks("pre_promotion", self.settings.hooks.pre_promotion, state)
            if failed is not None:
                return self._rollback(state, Reason.HOOK_FAILED, f"{failed.name}: {failed.detail}")
        state = state.shift_to_next_step(self.clock.now())
        self._save(state)
        return state

    def _apply_weight(self, state: RolloutState) -> RolloutState:
        """Put the recorded target in force, confirm it, then finish what the ending needs.

        A step's weight is set on the router. An ending is the promotion of a
        named slot: the canary's (promotion), or the stable one's (rollback,
        abort), which puts all traffic on it whatever the router had done
        before, so repeating it after a crash is always right. The final state
        is saved only after the ending's hooks ran: until then the rollout is
        still promoting or rolling back, and `resume` does what is missing
        again (hooks run at least once).
        """
        target = state.target_weight
        assert target is not None  # every weight-changing phase records its target
        try:
            if state.phase is Phase.SHIFTING:
                confirmed = self._set_weight(state, target)
            else:
                confirmed = self._make_stable(state)
        except RouterError as exc:
            if state.phase is Phase.ROLLING_BACK:
                # Nothing more can be done now; the recorded intent stays, so `resume` or
                # `abort` finishes it once the router answers.
                msg = (
                    f"rollback of {state.deployment_id} to weight 0 not confirmed: {exc}; "
                    "the canary may still get traffic: run `safeship rollout resume "
                    f"{state.deployment_id}` once the router answers"
                )
                self._record(state, "rollback", "error", msg, {})
                self._emit("rollback", state, msg)
                raise RollbackIncompleteError(msg) from exc
            return self._rollback(state, Reason.ROUTER_ERROR, str(exc))
        now = self.clock.now()
        if state.phase is Phase.SHIFTING:
            state = state.weight_confirmed(confirmed, now, self.router.achievable_weight(target))
            self._save(state)
            self.metrics.update_canary_traffic(state.environment, state.deployment_id, confirmed)
            self._emit("weight", state, f"canary weight {confirmed}% confirmed")
            return state
        state = state.applied(confirmed, now)
        self._save(state)
        self.metrics.update_canary_traffic(state.environment, state.deployment_id, confirmed)
        self._emit("weight", state, f"canary weight {confirmed}% confirmed")
        if state.phase is Phase.PROMOTING:
            self._run_hooks("post_promotion", self.settings.hooks.post_promotion, state)
        else:
            self._run_hooks("on_rollback", self.settings.hooks.on_rollback, state)
        state = state.weight_confirmed(confirmed, self.clock.now())
        self._record_slots(state, state.phase.value)
        self._save(state)
        if state.phase is Phase.PROMOTED:
            self._emit("finished", state, f"{state.version} promoted")
        else:
            self._emit("finished", state, f"{state.phase.value}: {state.detail}")
        return state

    def _set_weight(self, state: RolloutState, weight: int) -> int:
        """Set and read back a step's weight, retrying transient router errors with backoff.

        The router's stable slot must still be the rollout's: a weight on the
        wrong slot would send traffic to the version before last.
        """
        expected = self.router.achievable_weight(weight)
        stable = self._placement(state).stable.slot

        def attempt() -> int:
            now_stable = self.router.slots().stable.name
            if now_stable != stable:
                raise RouterError(
                    f"the router's stable slot is {now_stable}, but this rollout's is {stable} "
                    "(changed by hand, or by another rollout?)"
                )
            self.router.set_weight(weight)
            confirmed = self.router.get_weight()
            if confirmed != expected:
                asked = f"{weight}" if expected == weight else f"{weight} (achievable {expected})"
                raise RouterError(f"router reports weight {confirmed} after setting {asked}")
            return confirmed

        return with_retries(attempt, self.router_retries, sleep=self.clock.sleep)

    def _make_stable(self, state: RolloutState) -> int:
        """Promote the slot the ending names and confirm it serves everything.

        Promotion makes the canary's slot stable; a rollback or an abort the
        stable one's (all traffic back to it). Returns the canary weight the
        rollout has reached: 100 or 0.
        """
        placement = self._placement(state)
        promoting = state.phase is Phase.PROMOTING
        slot = placement.canary.slot if promoting else placement.stable.slot

        def attempt() -> int:
            self.router.promote(slot)
            now_stable, weight = self.router.slots().stable.name, self.router.get_weight()
            if (now_stable, weight) != (slot, 0):
                raise RouterError(
                    f"after promoting slot {slot} the router has {now_stable} stable and "
                    f"{weight}% on the other"
                )
            return 100 if promoting else 0

        return with_retries(attempt, self.router_retries, sleep=self.clock.sleep)

    def _hold(self, state: RolloutState) -> RolloutState:
        """Look at the step as often as figures change; let the policy decide every interval.

        The step begins when its weight is confirmed. Every tick (as often as the
        provider has fresh figures, at most every interval) the catastrophe
        guard, the crash-loop rule and the anytime-valid tests look, warm-up or
        not; a rollback they call for, or a failed anytime-valid test, is decided
        on at once. From the end of the warm-up, every interval and at the hold's
        end, every check looks and the policy decides. Durations are measured on
        the monotonic clock; the wall clock only places windows and records.
        """
        strategy = self.strategy
        origin = self._step_origin(state)
        hold_end = origin + strategy.hold
        warmup_end = origin + strategy.warmup
        tick = self._tick()
        window_start: float | None = None
        opened = 0.0  # monotonic reading when the window opened
        memory = Memory.from_storage(state.analysis)
        settled = strategy.warmup == 0  # without a warm-up the settled window is the step
        next_tick = origin
        next_full = min(warmup_end + strategy.interval, hold_end)
        while True:
            wake = min(next_tick, next_full)
            if not settled and self.clock.monotonic() < warmup_end:
                wake = min(wake, warmup_end)  # the settled window starts right at the warm-up's end
            self._sleep_until_monotonic(wake)
            mono, now = self.clock.monotonic(), self.clock.now()
            full = mono >= next_full
            if window_start is None:
                window_start, opened = self._open_window(now), mono
                if window_start is not None and not full:
                    next_tick = mono + tick  # an empty window says nothing: look a tick later
                    continue
            if next_tick <= mono:
                next_tick = max(next_tick + tick, mono + tick / 2)
            look = Look.FULL if full else Look.TICK
            if not settled and mono >= warmup_end:
                look = Look.SETTLE if not full else Look.FULL
            if window_start is None:
                if not full:
                    continue
                verdict = error_verdict(Window(now, now), "could not open the analysis window")
            else:
                # The window's length is monotonic time: a stepped wall clock neither
                # stretches nor shortens it, nor the Prometheus ranges taken from it.
                window = Window(window_start, window_start + (mono - opened))
                verdict = self._measure(window, memory, look, settled)
                if verdict.next_memory is not None:
                    memory = verdict.next_memory
                    # Settled once the memory holds the warm-up's end (a refused look does not).
                    settled = settled or memory.settled is not None
            if full:
                next_full = mono + strategy.interval
                if mono < hold_end < next_full:
                    next_full = hold_end  # the final verdict of a step is taken at its hold's end
            if not full and verdict.urgent is None and verdict.result is not Result.FAIL:
                continue
            observed = state.observed(verdict, now)
            decision = decide(observed, verdict, strategy, held=mono - origin)
            if (
                not full
                and verdict.urgent is None
                and decision.action is not DecisionAction.ROLLBACK
            ):
                # Proof of harm between intervals acts at once only to roll back; a pause waits
                # for the interval's look, and until then the guard keeps watching.
                continue
            state = observed
            self._record_verdict(state, verdict, decision)
            if decision.action is DecisionAction.ADVANCE:
                return self._next_step(state)
            if decision.action is DecisionAction.ROLLBACK:
                assert decision.reason is not None
                return self._rollback(state, decision.reason, decision.explanation, recorded=True)
            if decision.action is DecisionAction.PAUSE:
                paused = state.pause(decision.reason, decision.explanation, self.clock.now())
                self._save(paused)
                if window_start is not None:
                    # The canary keeps its weight while paused: keep watching it.
                    self._watches[state.deployment_id] = _Watch(window_start, opened, memory)
                self._emit("paused", paused, decision.explanation)
                return paused
            self._save(state)

    def _tick(self) -> float:
        """Seconds between looks: as often as the provider has fresh figures, at most interval."""
        fresh = self.provider.fresh_every
        interval = self.strategy.interval
        if fresh is None or not fresh > 0:
            return interval
        return min(interval, max(fresh, MIN_TICK))

    def _step_origin(self, state: RolloutState) -> float:
        """The monotonic reading at which the current step began, as far back as recorded.

        A hold starts right after its weight is confirmed (or its step restarted), so
        the wall-clock record is this moment give or take a store write.
        """
        started = state.step_started_at
        assert started is not None  # HOLDING always has a step start
        return self.clock.monotonic() - max(0.0, self.clock.now() - started)

    def _open_window(self, at: float) -> float | None:
        try:
            self.provider.window_opened(at)
        except ProviderError as exc:
            log.warning("could not open analysis window: %s", exc)
            return None
        except Exception as exc:  # a provider's bug must not end the rollout unrecorded
            log.warning("could not open analysis window: %s: %s", type(exc).__name__, exc)
            return None
        return at

    def _measure(self, window: Window, memory: Memory, look: Look, settled: bool) -> Verdict:
        """The provider's figures, judged; a failure of either is an error verdict, not a crash."""
        try:
            measurement = self.provider.measure(window)
        except ProviderError as exc:
            return error_verdict(window, str(exc))
        except Exception as exc:
            log.debug("provider failed", exc_info=True)
            return error_verdict(window, f"the provider failed: {type(exc).__name__}: {exc}")
        try:
            verdict = evaluate(measurement, self.strategy, memory, look=look)
            if look is Look.FULL and not settled and self.strategy.warmup > 0:
                # The warm-up's end was never marked (no figures then): the settled window
                # starts now, and this look says so rather than judging the warm-up.
                marked = evaluate(measurement, self.strategy, memory, look=Look.SETTLE)
                verdict = evaluate(measurement, self.strategy, marked.next_memory, look=look)
        except Exception as exc:
            log.debug("analysis failed", exc_info=True)
            return error_verdict(window, f"the analysis failed: {type(exc).__name__}: {exc}")
        return verdict

    def _wait_while_paused(self, state: RolloutState) -> RolloutState:
        """With a pause_timeout, wait for a person; past it, apply the configured action.

        A paused canary keeps its weight, so while this process waits the
        catastrophe guard and the crash-loop rule go on looking at every fresh
        figure, and roll back at once if they must. (Without a pause_timeout the
        process ends with exit 4, and nothing watches until `resume`.)
        """
        watch = self._watches.pop(state.deployment_id, None)
        timeout = self.strategy.pause_timeout
        if timeout is None or state.paused_at is None:
            return state
        remaining = state.paused_at + timeout - self.clock.now()
        deadline = self.clock.monotonic() + max(0.0, min(remaining, timeout))
        tick = self._tick() if watch is not None else self.strategy.interval
        next_poll = self.clock.monotonic() + self.strategy.interval
        while (mono := self.clock.monotonic()) < deadline:
            self.clock.sleep(min(tick, deadline - mono))
            mono = self.clock.monotonic()
            if watch is not None:
                urgent = self._watch_paused(state, watch, mono)
                if urgent is not None:
                    return self._drive(urgent)
            if mono >= next_poll or mono >= deadline:
                next_poll = mono + self.strategy.interval
                current = self.load(state.deployment_id)
                if current.phase is not Phase.PAUSED or current.paused_at != state.paused_at:
                    return self._follow(current)
        expired = self._pause_expired(state)
        return self._drive(expired) if expired is not None else state

    def _watch_paused(self, state: RolloutState, watch: _Watch, mono: float) -> RolloutState | None:
        """One look at a paused canary; the rollback it calls for, recorded, or None."""
        window = Window(watch.window_start, watch.window_start + (mono - watch.opened))
        verdict = self._measure(window, watch.memory, Look.TICK, True)
        if verdict.next_memory is not None:
            watch.memory = verdict.next_memory
        if verdict.urgent is None:
            return None
        decision = Decision(DecisionAction.ROLLBACK, verdict.reason, Reason(verdict.urgent))
        self._record_verdict(state, verdict, decision)
        return self._rollback(state, Reason(verdict.urgent), verdict.reason, recorded=True)

    def _follow(self, state: RolloutState) -> RolloutState:
        """A person continued the rollout from another process: report how it ends there.

        That process may die (its promotion killed at the router call, say). A
        state nobody changes for longer than any hook may take is taken over
        from here: an ending is finished, a step resumed as after a crash.
        """
        self._emit("paused", state, "continued from another process; following it")
        hooks = self.settings.hooks
        longest = max(
            (h.timeout for stage in (hooks.pre_promotion, hooks.post_promotion,
                                     hooks.on_rollback) for h in stage),
            default=0.0,
        )  # fmt: skip
        stall = longest + FOLLOW_GRACE
        seq, since = self._seen.get(state.deployment_id), self.clock.monotonic()
        while not state.terminal and state.phase is not Phase.PAUSED:
            self.clock.sleep(self.strategy.interval)
            state = self.load(state.deployment_id)
            if self._seen.get(state.deployment_id) != seq:
                seq, since = self._seen.get(state.deployment_id), self.clock.monotonic()
            elif self.clock.monotonic() - since > stall:
                log.warning(
                    "rollout %s: no change for %.0fs from the process that continued it; "
                    "finishing it here",
                    state.deployment_id,
                    stall,
                )
                if state.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
                    return self._drive(state)
                return self._resume(state)
        return state

    def _pause_expired(self, state: RolloutState) -> RolloutState | None:
        """The rollout as the pause-timeout action leaves it (its wait is over)."""
        timeout = self.strategy.pause_timeout
        if timeout is None or state.paused_at is None:
            return None
        detail = f"nobody answered the pause within {timeout:g}s: {state.detail}"
        if self.strategy.pause_timeout_action is Action.ROLLBACK:
            return self._rollback(state, state.reason or Reason.NO_DATA, detail)
        return None

    def _rollback(
        self, state: RolloutState, reason: Reason, detail: str, *, recorded: bool = False
    ) -> RolloutState:
        """Write the decision first, then move traffic: a crash in between is resumable."""
        if not recorded:
            self._record(state, "rollback", "fail", detail, {"reason": reason.value})
        state = state.rollback(reason, detail, self.clock.now())
        self._save(state)
        self._emit("rollback", state, f"rolling back ({reason.value}): {detail}")
        return state

    # --- records -------------------------------------------------------------------------

    def _save(self, state: RolloutState) -> None:
        """Store the transition, unless another process stored one since this one's last.

        Raises `StateConflictError` then (write-ahead: nothing has moved yet).
        """
        self._seen[state.deployment_id] = self.store.save_state(
            state.deployment_id,
            state.updated_at,
            state.for_storage(),
            after=self._seen.get(state.deployment_id, 0),
        )
        # The deployment row records only final outcomes; a paused rollout's phase lives in
        # its state, so resuming it never has to take an outcome back.
        outcome = state.outcome if state.terminal else None
        self.store.update_deployment(
            state.deployment_id,
            outcome=outcome.value if outcome else None,
            reason=state.reason.value if state.reason and state.terminal else None,
            finished_at=state.updated_at if state.terminal else None,
            max_weight=state.peak_weight,
        )
        # The query and analysis counts become durable as the rollout goes; they are only
        # metrics, so a store that refuses them must not stop the rollout (they stay pending).
        try:
            self.metrics.flush()
        except StoreError as exc:
            log.warning("query and analysis counts not saved to the history store: %s", exc)

    def _record(
        self, state: RolloutState, action: str, result: str, reason: str, inputs: dict[str, Any]
    ) -> None:
        self.store.add_decision(
            DecisionRecord(
                deployment_id=state.deployment_id,
                at=self.clock.now(),
                action=action,
                step=state.step_index,
                weight=state.weight,
                result=result,
                reason=reason,
                inputs=inputs,
            )
        )

    def _record_verdict(self, state: RolloutState, verdict: Verdict, decision: Decision) -> None:
        inputs = {
            "verdict": verdict.to_dict(),
            "decision": {
                "action": decision.action.value,
                "reason": decision.reason.value if decision.reason else None,
                "explanation": decision.explanation,
            },
            "counters": {
                "failures": state.failures,
                "failure_limit": self.strategy.limits.failure_limit,
                "consecutive_errors": state.consecutive_errors,
                "consecutive_error_limit": self.strategy.limits.consecutive_errors,
            },
            "step": {
                "index": state.step_index,
                "weight": state.weight,
                "started_at": state.step_started_at,
                "hold": self.strategy.hold,
                "warmup": self.strategy.warmup,
                "min_requests": self.strategy.min_requests,
            },
        }
        self._record(
            state, decision.action.value, verdict.result.value, decision.explanation, inputs
        )
        for check in verdict.checks:
            self.metrics.record_analysis(state.environment, check.name, check.result.value)
        if not verdict.checks:
            self.metrics.record_analysis(state.environment, "provider", verdict.result.value)
        self._emit("verdict", state, decision.explanation, verdict=verdict, decision=decision)

    def _smoke_test(self, state: RolloutState, test: SmokeTest) -> RunResult:
        """Run one smoke test, tracked (and stored) by `track_smoke_test`."""
        result = RunResult(test.name, False, 0.0, "not run")
        tracked = self.metrics.track_smoke_test(state.environment, state.deployment_id, test.name)
        if test.http is not None and variables_in(test.http.url):
            url = self._placement(state).render(test.http.url, f"smoke test {test.name} url")
            test = test.model_copy(update={"http": test.http.model_copy(update={"url": url})})
        with contextlib.suppress(SmokeTestFailed), tracked:
            result = run_smoke_test(test, self._env(state), secret_values(self.settings))
            if not result.passed:
                raise SmokeTestFailed(result.detail)
        self._record(
            state,
            "smoke",
            "pass" if result.passed else "fail",
            f"{result.name}: {result.detail}",
            {"duration": result.duration},
        )
        return result

    def _run_hooks(
        self, stage: str, hooks: tuple[Hook, ...], state: RolloutState
    ) -> RunResult | None:
        """Run a stage's hooks in order; the first failure (if any) is returned."""
        env = self._env(state)
        for index, hook in enumerate(hooks):
            result = run_hook(stage, index, hook, env, secret_values(self.settings))
            self._record(
                state,
                "hook",
                "pass" if result.passed else "fail",
                f"{result.name}: {result.detail}",
                {"stage": stage, "duration": result.duration},
            )
            self._emit("hook", state, _describe("hook", result))
            if not result.passed:
                return result
        return None

    def _env(self, state: RolloutState) -> dict[str, str]:
        env = rollout_env(
            deployment_id=state.deployment_id,
            service=state.service,
            environment=state.environment,
            version=state.version,
            weight=state.weight,
        )
        try:
            placement = self._placement(state)
        except RouterError as exc:
            # A hook can still run without it; the rollout itself confirms every weight.
            log.warning("router could not tell the slots: %s", exc)
            return env
        return env | slot_env(placement)

    def _emit(
        self,
        kind: str,
        state: RolloutState,
        message: str,
        verdict: Verdict | None = None,
        decision: Decision | None = None,
    ) -> None:
        log.info("%s: %s", state.deployment_id, message)
        if self.on_event is not None:
            self.on_event(RolloutEvent(kind, state, message, verdict, decision))

    def _sleep_until_monotonic(self, when: float) -> None:
        delay = when - self.clock.monotonic()
        if delay > 0:
            self.clock.sleep(delay)


def ready_slots(router: Router, version: str | None = None) -> Slots:
    """The router's slots, if a new version can go into its canary slot now.

    The router must answer (else `RouterError`) and its canary slot must carry
    no traffic (else `RolloutRefusedError`). A rollout asks this before anything
    moves, and `safeship check` asks it the same way, so both say the same.
    """
    health = router.health()
    if not health.ok:
        raise RouterError(f"router not ready before the rollout: {health.detail}")
    try:
        slots = router.slots()
        weight = router.get_weight()
    except RouterError as exc:
        raise RouterError(f"router not ready before the rollout: {exc}") from exc
    canary = slots.canary
    if weight != 0:
        where = f" ({canary.address})" if canary.address else ""
        raise RolloutRefusedError(
            f"the canary slot {canary.name}{where} has weight {weight}, not 0: it serves "
            f"traffic already, so {version or 'a new version'} cannot be deployed into it. "
            "Finish the rollout that left it so (`safeship rollout list`), or set its weight "
            "to 0; nothing moved"
        )
    return slots


def placement_of(slots: Slots, version: str | None, stable_version: str | None) -> Placement:
    """`version` into the router's canary slot, beside `stable_version` in its stable one
    (None: not known, as to `safeship check`)."""
    return Placement(
        SlotVersion(slots.canary.name, slots.canary.address, version),
        SlotVersion(slots.stable.name, slots.stable.address, stable_version),
    )


def _describe(what: str, result: RunResult) -> str:
    status = "passed" if result.passed else "FAILED"
    return f"{what} {result.name} {status} in {result.duration:.2f}s ({result.detail})"
