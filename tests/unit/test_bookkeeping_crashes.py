"""A kill -9 at every bookkeeping step of a promotion and of a rollback, then `resume`.

From the moment a rollout records that it promotes or rolls back, every call
that changes the world (the router, the history store, the hooks) is a point
where the process may die. Killed there (nothing after it runs), another
process resumes the rollout; then state, router and outcome row must agree,
the hooks of the ending must have run, and the next rollout must deploy into
the idle slot and succeed. Once, a kill between the final state and the
outcome row locked the service for good, and a kill between the promotion
and the slot swap sent the next rollout's traffic to the version before last.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    Hook,
    Hooks,
    LocalRouterSettings,
    ScrapeProviderSettings,
    StoreSettings,
)
from safeship.placement import Placement
from safeship.rollout.controller import RolloutController
from safeship.store import open_store
from safeship.store.interface import Store
from safeship.testing import FakeRouter, SyntheticProvider, Traffic

WATCHED_PHASES = {"promoting", "rolling_back"}


class Killed(BaseException):
    """kill -9: not an Exception, so nothing in safeship handles it; nothing after it runs."""


class Killer:
    """Counts world-changing calls once an ending is recorded; dies at the `at`-th."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.armed = False
        self.points: list[str] = []

    def point(self, name: str) -> None:
        if not self.armed:
            return
        self.points.append(name)
        if len(self.points) == self.at:
            raise Killed(name)

    def wrap(self, obj: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(obj, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.point(f"before {name}")
            result = original(*args, **kwargs)
            if name == "save_state" and args[2].get("phase") in WATCHED_PHASES:
                self.armed = True
            self.point(f"after {name}")
            return result

        setattr(obj, name, call)


def environment(log: Path) -> EnvironmentConfig:
    def hook(word: str) -> Hook:
        script = (
            "import os, sys; open(sys.argv[1], 'a')"
            ".write(sys.argv[2] + ' ' + os.environ['SAFESHIP_VERSION'] + '\\n')"
        )
        return Hook(command=(sys.executable, "-c", script, str(log), word))

    return EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=CanaryStrategy(hold=60, min_hold=60, interval=10),  # few looks: fast
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        hooks=Hooks(post_promotion=(hook("promoted"),), on_rollback=(hook("rolled-back"),)),
        smoke_tests=(),
        store=StoreSettings(),
    )


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def open_one(name: str) -> Store:
        store = open_store(f"sqlite:///{tmp_path / name}.db")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def run(
    store: Store,
    router: FakeRouter,
    env: EnvironmentConfig,
    faulty: bool,
    killer: Killer,
) -> None:
    clock = VirtualClock()
    provider = SyntheticProvider(
        router, clock, canary=Traffic(error_ratio=0.05) if faulty else Traffic()
    )
    controller = RolloutController(env, store=store, router=router, provider=provider, clock=clock)
    for name in ("save_state", "update_deployment", "add_decision"):
        killer.wrap(store, name)
    for name in ("promote", "set_weight"):
        killer.wrap(router, name)
    killer.wrap(controller, "_run_hooks")
    with contextlib.suppress(Killed):
        controller.start("v2", deployment_id="d")


def controller_of(store: Store, router: FakeRouter, env: EnvironmentConfig) -> RolloutController:
    clock = VirtualClock()
    return RolloutController(
        env, store=store, router=router, provider=SyntheticProvider(router, clock), clock=clock
    )


@pytest.mark.parametrize("faulty", [False, True], ids=["promotion", "rollback"])
def test_a_kill_at_every_bookkeeping_step_then_resume_agrees_and_the_next_goes_idle(
    stores: Callable[[str], Store], tmp_path: Path, faulty: bool
) -> None:
    whole = Killer(at=None)
    run(stores("whole"), FakeRouter(), environment(tmp_path / "whole.log"), faulty, whole)
    assert whole.points, "the ending was never recorded"
    expected = "rolled_back" if faulty else "promoted"
    for at in range(1, len(whole.points) + 1):
        log = tmp_path / f"{at}.log"
        env = environment(log)
        router = FakeRouter()
        run(stores(f"killed-{at}"), router, env, faulty, Killer(at))
        for name in ("promote", "set_weight"):
            delattr(router, name)  # the router itself survives; only the process died
        store = stores(f"killed-{at}")  # another process, its own connection
        where = f"killed {whole.points[at - 1]} (point {at})"

        state = controller_of(store, router, env).resume("d")

        record = store.get_deployment("d")
        assert record is not None, where
        assert (state.phase.value, record.outcome) == (expected, expected), where
        promoted_into = Placement.from_storage(state.placement)
        assert promoted_into is not None, where
        stable = promoted_into.canary.slot if not faulty else promoted_into.stable.slot
        assert (router.slots().stable.name, router.weight) == (stable, 0), where
        ran = log.read_text().splitlines() if log.exists() else []
        assert ran, where  # the ending's hooks ran (at least once)
        assert set(ran) == {f"{'rolled-back' if faulty else 'promoted'} v2"}, where
        # The next rollout is not locked out, deploys into the idle slot and is promoted.
        following = controller_of(store, router, env).start("v3")
        assert following.phase.value == "promoted", (where, following.detail)
        placed = Placement.from_storage(following.placement)
        assert placed is not None, where
        assert placed.canary.slot != stable, where
        assert router.slots().stable.name == placed.canary.slot, where
