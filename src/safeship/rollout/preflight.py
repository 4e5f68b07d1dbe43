"""What `safeship check` finds before a rollout, beside Prometheus: what would break one.

Each environment of the config is checked as its rollout would meet it. The
router must answer and its canary slot carry no traffic: the refusal a
rollout makes before anything moves (`ready_slots`), asked the same way.
Every hook and smoke-test command must be there to start, resolved as
`run_command` resolves it, or the rollout ends `hook_failed` (or
`smoke_failed`) after its slot was prepared. The scrape provider's `match`
must select request series at both targets, its URLs rendered over the
router's slots as a rollout renders them: one that selects nothing passed
every check before, and the rollout paused after its first hold with no
requests counted while traffic flowed.

Environments that share a setting (the top level's) would print the same
finding once each; it is printed once, naming them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from safeship.config import (
    Config,
    EnvironmentConfig,
    Hook,
    Hooks,
    RouterSettings,
    ScrapeProviderSettings,
    secret_values,
)
from safeship.errors import (
    ConfigError,
    ProviderError,
    RolloutRefusedError,
    RouterError,
    SafeshipError,
)
from safeship.placement import variables_in
from safeship.prometheus.check import Finding, Status, label_absent, value_unmatched
from safeship.prometheus.promql import Matcher
from safeship.providers import build_provider
from safeship.providers.scrape import BUCKETS_METRIC, REQUESTS_METRIC, ScrapeProvider
from safeship.redact import redact_text
from safeship.rollout.controller import placement_of, ready_slots
from safeship.rollout.hooks import check_hook, check_smoke_test
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
    """Checks one environment after another, then merges what they share."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.secrets = secret_values(config)
        self.found: list[_Found] = []
        self._routers: dict[str, tuple[Slots | None, Status, str]] = {}

    def add(
        self, env: EnvironmentConfig, check: str, status: Status, subject: str, text: str
    ) -> None:
        self.found.append(
            _Found(env.environment, check, status, subject, redact_text(text, self.secrets))
        )

    def run(self) -> list[Finding]:
        for name in self.config.environments:
            env = self.config.for_environment(name)
            slots = self._check_router(env)
            self._check_commands(env)
            if isinstance(env.provider, ScrapeProviderSettings):
                self._check_scrape(env, env.provider, slots)
        return self._merged()

    def _check_router(self, env: EnvironmentConfig) -> Slots | None:
        """The slots when a rollout could go into them; read once per router, however
        many environments share it."""
        key = env.router.model_dump_json()
        if key not in self._routers:
            self._routers[key] = _read_router(env.router)
        slots, status, message = self._routers[key]
        self.add(env, "router", status, "router", message)
        return slots

    def _check_scrape(
        self, env: EnvironmentConfig, settings: ScrapeProviderSettings, slots: Slots | None
    ) -> None:
        templates = [
            f"provider.{role}_url"
            for role in ("canary", "baseline")
            if variables_in(getattr(settings, f"{role}_url"))
        ]
        try:
            provider = build_provider(env)
        except ConfigError as exc:
            self.add(env, "scrape", Status.FAIL, "scrape", str(exc))
            return
        assert isinstance(provider, ScrapeProvider)
        slot_of: dict[str, Slot] = {}
        try:
            if templates:
                if slots is None:
                    are = "are templates" if len(templates) > 1 else "is a template"
                    self.add(
                        env,
                        "scrape",
                        Status.WARN,
                        "scrape",
                        f"not checked: {' and '.join(templates)} {are} over the router's "
                        "slots, which the router did not tell (see the router above)",
                    )
                    return
                try:
                    provider.follow(placement_of(slots, None, None))
                except ConfigError as exc:
                    self.add(env, "scrape", Status.WARN, "scrape", f"not checked: {exc}")
                    return
                slot_of = {"baseline": slots.stable, "canary": slots.canary}
            for role in ("baseline", "canary"):
                where = provider.source(role)
                slot = slot_of.get(role)
                if slot and f"provider.{role}_url" in templates and slot.name != slot.address:
                    where += f" (slot {slot.name})"
                self._check_target(env, provider, role, where, settings.match)
        finally:
            provider.close()

    def _check_target(
        self,
        env: EnvironmentConfig,
        provider: ScrapeProvider,
        role: str,
        where: str,
        match: Mapping[str, str],
    ) -> None:
        """Baseline problems fail; the canary's warn, since before a rollout its slot may
        be empty or hold another service until the pre_rollout hook deploys into it."""
        subject = f"{role} scrape"
        if role == "baseline":
            status, note = Status.FAIL, ""
        else:
            status = Status.WARN
            note = (
                " (expected if the canary slot is empty or holds another service until the "
                "pre_rollout hook deploys into it)"
            )
        try:
            series = provider.request_series(role)
        except ProviderError as exc:
            why = note or ": the rollout measures the stable version there"
            self.add(env, "scrape", status, subject, f"{exc}{why}")
            return
        if not series:
            self.add(
                env,
                "scrape",
                status,
                subject,
                f"{where}: metric {REQUESTS_METRIC} is absent: the scrape provider counts "
                f"{REQUESTS_METRIC} and {BUCKETS_METRIC}; is the URL right, and does the "
                f"service expose them?{note}",
            )
            return
        problem = _match_problem(series, match)
        if problem is not None:
            self.add(
                env,
                "scrape",
                status,
                subject,
                f"{where}: {problem}. Fix provider.match: a rollout would count no requests "
                f"here{note}",
            )
            return
        selected = sum(_selects(s, match) for s in series)
        self.add(
            env,
            "scrape",
            Status.OK,
            subject,
            f"{where}: provider.match selects {selected} of {len(series)} request series",
        )

    def _check_commands(self, env: EnvironmentConfig) -> None:
        """Every hook and smoke-test command, named by its key path in the file."""
        written = self.config.environments[env.environment]
        own = f"environments.{env.environment}."
        judged: list[tuple[str, tuple[bool, str] | None]] = []
        for stage in Hooks.model_fields:
            hooks: tuple[Hook, ...] = getattr(env.hooks, stage)
            inherited = hooks == getattr(self.config.hooks, stage)
            prefix = f"{'' if inherited else own}hooks.{stage}"
            judged += [(f"{prefix}[{i}].command", check_hook(h)) for i, h in enumerate(hooks)]
        prefix = f"{'' if written.smoke_tests is None else own}smoke_tests"
        judged += [
            (f"{prefix}[{i}].command", check_smoke_test(t)) for i, t in enumerate(env.smoke_tests)
        ]
        for where, result in judged:
            if result is not None:
                passed, message = result
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
    """Router, hooks, smoke-test commands and scrape targets of every environment, as
    its rollout would meet them."""
    return _Checker(config).run()


def _read_router(settings: RouterSettings) -> tuple[Slots | None, Status, str]:
    try:
        router = build_router(settings)
    except SafeshipError as exc:  # e.g. an admin token that cannot be read
        return None, Status.FAIL, str(exc)
    try:
        slots = ready_slots(router)
    except RolloutRefusedError as exc:
        return None, Status.FAIL, str(exc)
    except RouterError as exc:
        return None, Status.WARN, f"{exc}; a rollout would stop there (exit 3)"
    finally:
        router.close()
    return slots, Status.OK, _describe(slots)


def _match_problem(series: list[dict[str, str]], match: Mapping[str, str]) -> str | None:
    """Why `match` selects none of `series`, told label by label as the Prometheus check
    tells a matcher: the first label that no series has, or whose value none has."""
    kept: dict[str, str] = {}
    for label, value in match.items():
        wanted = {**kept, label: value}
        if any(_selects(s, wanted) for s in series):
            kept = wanted
            continue
        candidates = [s for s in series if _selects(s, kept)]
        values = sorted({s[label] for s in candidates if label in s})
        if not values:
            return label_absent(REQUESTS_METRIC, label, sorted({k for s in candidates for k in s}))
        return value_unmatched(
            REQUESTS_METRIC, Matcher(label, "=", value), values, with_others=bool(kept)
        )
    return None


def _selects(labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
    """As the scrape provider selects a series: every `match` label has its value."""
    return all(labels.get(k) == v for k, v in match.items())


def _describe(slots: Slots) -> str:
    def one(slot: Slot) -> str:
        named = slot.address and slot.address != slot.name  # unnamed slots are their address
        return f"{slot.name} ({slot.address})" if named else slot.name

    return f"canary slot {one(slots.canary)} at weight 0, stable slot {one(slots.stable)}"
