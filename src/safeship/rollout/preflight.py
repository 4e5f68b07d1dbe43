"""What `safeship check` finds before a rollout, beside Prometheus: what would break one.

Each environment of the config is checked as its rollout would meet it. The
router must answer and its canary slot carry no traffic: the refusal a
rollout makes before anything moves (`ready_slots`), asked the same way.
Every hook and smoke-test command must be there to start, resolved as
`run_command` resolves it, or the rollout ends `hook_failed` (or
`smoke_failed`) after its slot was prepared.

Environments that share a setting (the top level's) would print the same
finding once each; it is printed once, naming them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from safeship.config import Config, EnvironmentConfig, Hook, Hooks, RouterSettings, secret_values
from safeship.errors import RolloutRefusedError, RouterError, SafeshipError
from safeship.prometheus.check import Finding, Status
from safeship.redact import redact_text
from safeship.rollout.controller import ready_slots
from safeship.rollout.hooks import check_program
from safeship.routers import build_router
from safeship.routers.interface import Slot, Slots


@dataclass(frozen=True)
class _Found:
    """A finding of one environment; `subject` leaves the environment out."""

    environment: str
    check: str
    status: Status
    subject: str
    message: str


class _Checker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.secrets = secret_values(config)
        self.found: list[_Found] = []
        self._routers: dict[str, tuple[Status, str]] = {}

    def add(
        self, env: EnvironmentConfig, check: str, status: Status, subject: str, text: str
    ) -> None:
        self.found.append(
            _Found(env.environment, check, status, subject, redact_text(text, self.secrets))
        )

    def run(self) -> list[Finding]:
        for name in self.config.environments:
            env = self.config.for_environment(name)
            self._check_router(env)
            self._check_commands(env)
        return self._merged()

    def _check_router(self, env: EnvironmentConfig) -> None:
        """Read once per router however many environments share it."""
        key = env.router.model_dump_json()
        if key not in self._routers:
            self._routers[key] = _read_router(env.router)
        status, message = self._routers[key]
        self.add(env, "router", status, "router", message)

    def _check_commands(self, env: EnvironmentConfig) -> None:
        """Every hook and smoke-test command, named by its key path in the file."""
        written = self.config.environments[env.environment]
        own = f"environments.{env.environment}."
        commands: list[tuple[str, tuple[str, ...] | str, bool, dict[str, str]]] = []
        for stage in Hooks.model_fields:
            hooks: tuple[Hook, ...] = getattr(env.hooks, stage)
            inherited = hooks == getattr(self.config.hooks, stage)
            prefix = f"{'' if inherited else own}hooks.{stage}"
            commands += [
                (f"{prefix}[{i}].command", h.command, h.shell, h.env) for i, h in enumerate(hooks)
            ]
        prefix = f"{'' if written.smoke_tests is None else own}smoke_tests"
        commands += [
            (f"{prefix}[{i}].command", t.command, t.shell, {})
            for i, t in enumerate(env.smoke_tests)
            if t.command is not None
        ]
        for where, command, shell, extra in commands:
            judged = check_program(command, shell=shell, env={**os.environ, **extra})
            if judged is not None:
                passed, message = judged
                self.add(env, "hooks", Status.OK if passed else Status.FAIL, where, message)

    def _merged(self) -> list[Finding]:
        environments: dict[tuple[str, Status, str, str], list[str]] = {}
        for f in self.found:
            environments.setdefault((f.check, f.status, f.subject, f.message), []).append(
                f.environment
            )
        return [
            Finding(check, status, f"{', '.join(names)} {subject}", message)
            for (check, status, subject, message), names in environments.items()
        ]


def check_environments(config: Config) -> list[Finding]:
    """Router, hooks and smoke-test commands of every environment, as its rollout would
    meet them."""
    return _Checker(config).run()


def _read_router(settings: RouterSettings) -> tuple[Status, str]:
    try:
        router = build_router(settings)
    except SafeshipError as exc:  # e.g. an admin token that cannot be read
        return Status.FAIL, str(exc)
    try:
        slots = ready_slots(router)
    except RolloutRefusedError as exc:
        return Status.FAIL, str(exc)
    except RouterError as exc:
        return Status.WARN, f"{exc}; a rollout would stop there (exit 3)"
    finally:
        router.close()
    return Status.OK, _describe(slots)


def _describe(slots: Slots) -> str:
    def one(slot: Slot) -> str:
        return f"{slot.name} ({slot.address})" if slot.address else slot.name

    return f"canary slot {one(slots.canary)} at weight 0, stable slot {one(slots.stable)}"
