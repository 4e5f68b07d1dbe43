"""Test doubles that users of the library need too: a router and a provider in memory.

`FakeRouter` behaves like a router that answers (or fails when told to);
`SyntheticProvider` produces the request counts a service at `rps` would
serve through that router, with given error ratios and latencies, in step with
a `VirtualClock` - so a rollout's hours run in milliseconds and deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass

from safeship.clock import Clock
from safeship.errors import ProviderError, RouterError
from safeship.providers.interface import Measurement, MetricsProvider, VersionSample, Window
from safeship.routers.interface import Router, RouterHealth

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)


class FakeRouter(Router):
    """Keeps the weight in memory; `fail_next` makes the next calls raise RouterError."""

    def __init__(self, weight: int = 0) -> None:
        self.weight = weight
        self.history: list[int] = []
        self.fail_next = 0

    def set_weight(self, weight: int) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RouterError("fake router told to fail")
        self.weight = weight
        self.history.append(weight)

    def get_weight(self) -> int:
        return self.weight

    def health(self) -> RouterHealth:
        return RouterHealth(True, "fake router")


@dataclass(frozen=True)
class Traffic:
    """How one version behaves: its error ratio and a fixed latency."""

    error_ratio: float = 0.0
    latency: float = 0.02


class SyntheticProvider(MetricsProvider):
    """Expected counts of `rps` requests split by the router's weight, over any window.

    `outage` makes every measurement raise ProviderError while set.
    """

    def __init__(
        self,
        router: FakeRouter,
        clock: Clock,
        *,
        rps: float = 100.0,
        baseline: Traffic | None = None,
        canary: Traffic | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.rps = rps
        self.baseline = baseline or Traffic()
        self.canary = canary or Traffic()
        self.outage = False

    def measure(self, window: Window) -> Measurement:
        if self.outage:
            raise ProviderError("synthetic outage")
        share = self.router.weight / 100
        total = self.rps * window.seconds
        return Measurement(
            window=window,
            canary=_sample(total * share, self.canary),
            baseline=_sample(total * (1 - share), self.baseline),
            queries={"canary": "synthetic", "baseline": "synthetic"},
        )


def _sample(requests: float, traffic: Traffic) -> VersionSample:
    finite = [(bound, requests if traffic.latency <= bound else 0.0) for bound in LATENCY_BOUNDS]
    buckets = (*finite, (float("inf"), requests))
    return VersionSample(
        requests=requests, errors=requests * traffic.error_ratio, latency_buckets=buckets
    )
