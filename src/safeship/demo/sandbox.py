"""The local sandbox behind `safeship demo`: real processes on loopback, real rollouts.

It starts the stable version of the sample service, the local router (its
own process) in front of it and a load generator sending traffic through the
router. Each scenario starts a canary process, points the router's canary
slot at it (what a pre-rollout hook does in production) and runs the real
rollout controller with the embedded scrape provider. A promotion makes the
canary's slot the stable one (the router swaps them; the process goes on
serving) and the old stable process is stopped; after a rollback the canary
is stopped.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client import CollectorRegistry

from safeship.clock import SystemClock
from safeship.config import (
    DEMO_ENVIRONMENT,
    DEMO_SERVICE,
    CanaryStrategy,
    EnvironmentConfig,
    Hooks,
    HttpSmokeTest,
    LocalRouterSettings,
    PrometheusProviderSettings,
    PrometheusSettings,
    ScrapeProviderSettings,
    SmokeTest,
    StoreSettings,
)
from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PrometheusServer
from safeship.demo.service import ServiceProcess, start_service
from safeship.ids import new_deployment_id
from safeship.metrics import DeploymentMetrics
from safeship.providers import build_provider
from safeship.providers.interface import Window
from safeship.providers.scrape import ScrapeProvider
from safeship.rollout.controller import EventSink, RolloutController
from safeship.rollout.machine import Outcome, RolloutState
from safeship.rollout.story import rollout_story
from safeship.routers.local import LocalProxyProcess, LocalRouter, start_local_proxy
from safeship.store import open_store
from safeship.store.interface import SlotAssignment, Store

SERVICE = DEMO_SERVICE
MetricsSource = Literal["scrape", "prometheus"]
ENVIRONMENT = DEMO_ENVIRONMENT
STABLE_VERSION = "v1.0.0"  # what the sandbox installs before its first rollout


def demo_strategy() -> CanaryStrategy:
    """The demo profile: the default steps, short holds, judged on the default checks."""
    return CanaryStrategy(hold=12.0, min_hold=6.0, warmup=2.0, interval=2.0, min_requests=100)


@dataclass(frozen=True)
class Fault:
    """What is wrong with a canary: a share of 500s and/or extra latency."""

    error_rate: float = 0.0
    latency_ms: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.error_rate == 0 and self.latency_ms == 0

    def describe(self) -> str:
        parts = []
        if self.error_rate:
            parts.append(f"{self.error_rate:.0%} errors")
        if self.latency_ms:
            parts.append(f"+{self.latency_ms:g}ms latency")
        return ", ".join(parts) or "healthy"

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`error-rate=0.05`, `latency=300ms`, or both separated by commas."""
        error_rate, latency_ms = 0.0, 0.0
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            try:
                if key == "error-rate":
                    error_rate = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
                elif key == "latency":
                    latency_ms = float(value.removesuffix("ms"))
                else:
                    raise ValueError(f"unknown fault {key!r}")
            except ValueError as exc:
                raise ValueError(
                    f"--fault {text!r}: {exc}; use error-rate=0.05 or latency=300ms"
                ) from exc
        if not 0 <= error_rate <= 1 or latency_ms < 0:
            raise ValueError(f"--fault {text!r}: error-rate must be 0..1 and latency >= 0")
        return cls(error_rate, latency_ms)


@dataclass(frozen=True)
class Scenario:
    version: str
    fault: Fault

    @property
    def expected(self) -> Outcome:
        return Outcome.PROMOTED if self.fault.healthy else Outcome.ROLLED_BACK


@dataclass
class ScenarioResult:
    """What happened to one canary, for the summary and `--json`."""

    scenario: Scenario
    state: RolloutState
    duration: float
    canary_requests: float
    canary_failed_requests: float
    story: dict[str, Any] = field(default_factory=dict)

    @property
    def as_expected(self) -> bool:
        return self.state.outcome is self.scenario.expected

    def to_dict(self) -> dict[str, Any]:
        decisions = self.story.get("decisions", [])
        steps_reached = sorted({d["weight"] for d in decisions if d["weight"] > 0})
        if self.state.outcome is Outcome.PROMOTED:
            steps_reached.append(100)
        return {
            "deployment_id": self.state.deployment_id,
            "version": self.scenario.version,
            "fault": self.scenario.fault.describe(),
            "expected": self.scenario.expected.value,
            "outcome": self.state.outcome.value if self.state.outcome else self.state.phase.value,
            "as_expected": self.as_expected,
            "reason": self.state.reason.value if self.state.reason else None,
            "explanation": self.state.detail,
            "steps_reached": steps_reached,
            "canary_requests": self.canary_requests,
            "canary_failed_requests": self.canary_failed_requests,
            "duration": round(self.duration, 2),
            "cause": self.story.get("cause"),
            "decisions": decisions,
        }


class Sandbox:
    """Stable service + local router + load, all on 127.0.0.1 free ports."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        store: Store,
        rps: float,
        strategy: CanaryStrategy,
        metrics_source: MetricsSource = "scrape",
    ) -> None:
        self._stack = stack
        self.store = store
        self.strategy = strategy
        self.prometheus: PrometheusServer | None = None
        if metrics_source == "prometheus":
            self.prometheus = stack.enter_context(PrometheusServer(scrape_interval=1.0))
        self.stable = self._start_service(STABLE_VERSION, "stable", Fault())
        self.proxy: LocalProxyProcess = stack.enter_context(
            start_local_proxy(
                listen="127.0.0.1:0",
                admin="127.0.0.1:0",
                stable=self.stable.url,
                canary=self.stable.url,
                weight=0,
            )
        )
        self.router = LocalRouter(self.proxy.admin_url)
        stack.callback(self.router.close)
        self._installed = False
        self.load = LoadGenerator(self.proxy.url, rps=rps)
        self.load.start()
        stack.callback(self.load.stop)
        self.registry = CollectorRegistry()
        self.metrics = DeploymentMetrics(self.registry, store, service=SERVICE)

    def _record_install(self) -> None:
        """The first install of this sandbox's stable version, as the history store's
        latest slot assignment: the default store keeps earlier demos' slots, which
        name processes long gone, and the first rollout would not know its stable
        version."""
        slots = self.router.slots()
        self.store.record_slots(
            SlotAssignment(
                service=SERVICE,
                environment=ENVIRONMENT,
                at=time.time(),
                deployment_id=f"install-{new_deployment_id(time.time())}",
                change="promoted",
                stable_slot=slots.stable.name,
                stable_version=STABLE_VERSION,
                canary_slot=slots.canary.name,
                canary_version=None,
            )
        )

    def _start_service(self, version: str, track: str, fault: Fault) -> ServiceProcess:
        process = start_service(
            "127.0.0.1:0",
            SERVICE,
            ENVIRONMENT,
            version,
            track,
            error_rate=fault.error_rate,
            latency_ms=fault.latency_ms,
        )
        self._stack.callback(process.stop)
        if self.prometheus is not None:
            self.prometheus.add_targets(_address(process.url))
        return process

    def settings(self, canary: ServiceProcess) -> EnvironmentConfig:
        return EnvironmentConfig(
            service=SERVICE,
            environment=ENVIRONMENT,
            canary=self.strategy,
            router=LocalRouterSettings(admin_url=self.proxy.admin_url),
            provider=ScrapeProviderSettings(
                canary_url=canary.metrics_url, baseline_url=self.stable.metrics_url
            )
            if self.prometheus is None
            else PrometheusProviderSettings(),
            prometheus=PrometheusSettings(
                url=self.prometheus.url if self.prometheus else None, timeout=5, retries=1
            ),
            smoke_tests=(
                SmokeTest(
                    name="canary-answers",
                    http=HttpSmokeTest(url=f"{canary.url}/healthz", expect_body="ok"),
                ),
            ),
            hooks=Hooks(),
            store=StoreSettings(url="sqlite://"),
        )

    def run(self, scenario: Scenario, on_event: EventSink | None) -> ScenarioResult:
        """Deploy `scenario.version` as a canary and let the controller decide."""
        canary = self._start_service(scenario.version, "canary", scenario.fault)
        self._point_canary_slot(canary.url)
        if not self._installed:
            self._record_install()  # once there are two slots to name
            self._installed = True
        settings = self.settings(canary)
        if self.prometheus is not None:
            # Both versions must be scraped before traffic moves, or the first windows are empty.
            self.prometheus.wait_for_targets(_address(canary.url), _address(self.stable.url))
        with contextlib.ExitStack() as closing:
            # What the canary really served, read from its own counters: the ground truth.
            counter = ScrapeProvider(canary.metrics_url, self.stable.metrics_url)
            closing.callback(counter.close)
            provider = build_provider(settings, self.metrics)
            closing.callback(provider.close)
            started = time.monotonic()
            opened = time.time()
            counter.window_opened(opened)
            controller = RolloutController(
                settings,
                store=self.store,
                router=self.router,
                provider=provider,
                clock=SystemClock(),
                metrics=self.metrics,
                on_event=on_event,
            )
            state = controller.start(scenario.version)
            served = counter.measure(Window(opened, time.time())).canary
        duration = time.monotonic() - started
        if state.outcome is Outcome.PROMOTED:
            self._replace_stable(canary)
        else:
            canary.stop()
        return ScenarioResult(
            scenario=scenario,
            state=state,
            duration=duration,
            canary_requests=served.requests,
            canary_failed_requests=served.errors,
            story=rollout_story(self.store, state.deployment_id),
        )

    def _point_canary_slot(self, url: str) -> None:
        response = httpx.put(f"{self.proxy.admin_url}/upstreams", json={"canary": url}, timeout=5)
        response.raise_for_status()

    def _replace_stable(self, canary: ServiceProcess) -> None:
        """Promotion made the canary's slot the stable one: the old stable process goes."""
        old, self.stable = self.stable, canary
        old.stop()


def _address(url: str) -> str:
    return url.removeprefix("http://")


def default_scenarios() -> list[Scenario]:
    return [Scenario("v1.1.0", Fault()), Scenario("v1.2.0", Fault(error_rate=0.05))]


@contextlib.contextmanager
def sandbox(
    *,
    rps: float = 200.0,
    store_url: str | None = None,
    strategy: CanaryStrategy | None = None,
    metrics_source: MetricsSource = "scrape",
) -> Iterator[Sandbox]:
    """A running sandbox; every process it started is stopped on exit, also on Ctrl-C."""
    with contextlib.ExitStack() as stack:
        if store_url is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="safeship-demo-")))
            store_url = f"sqlite:///{tmp / 'history.db'}"
        store = open_store(store_url)
        stack.callback(store.close)
        yield Sandbox(stack, store, rps, strategy or demo_strategy(), metrics_source)


def run_demo(
    scenarios: list[Scenario],
    *,
    rps: float = 200.0,
    store_url: str | None = None,
    on_event: EventSink | None = None,
    on_scenario: Callable[[Scenario], None] | None = None,
    metrics_source: MetricsSource = "scrape",
) -> list[ScenarioResult]:
    """Run each scenario in turn in one sandbox and return what happened."""
    results = []
    with sandbox(rps=rps, store_url=store_url, metrics_source=metrics_source) as box:
        for scenario in scenarios:
            if on_scenario is not None:
                on_scenario(scenario)
            results.append(box.run(scenario, on_event))
    return results
