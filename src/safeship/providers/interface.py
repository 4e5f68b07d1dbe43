"""The metrics-provider interface and the measurement it returns.

A measurement covers one analysis window for both versions at once, so the
canary is always judged against the baseline over the same time. Counts are
increases over the window, never totals since process start: a provider that
sees a counter reset (a restarted process) keeps counting from the reset, as
Prometheus' `increase()` does, and reports how many resets it saw, so a
restart never restarts the window nor hides the errors that follow it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safeship.placement import Placement


@dataclass(frozen=True)
class Window:
    """An analysis window in epoch seconds; it never starts before the current step did."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class VersionSample:
    """What one version served during a window.

    `latency_buckets` are cumulative histogram buckets `(le, count)` sorted by
    `le`, ending with `+Inf`, as in Prometheus' `_bucket` series.
    `latency_samples` are individual durations in seconds, when a provider has
    them (simulations); analyses prefer them to buckets. `resets` counts the
    counter resets (process restarts) seen during the window.
    """

    requests: float
    errors: float
    latency_buckets: tuple[tuple[float, float], ...] = ()
    latency_samples: tuple[float, ...] = ()  # raw durations, when a provider has them
    resets: int = 0

    @property
    def error_ratio(self) -> float | None:
        """Errors / requests, or None when there were no requests (no data is not zero)."""
        if self.requests <= 0:
            return None
        return self.errors / self.requests


@dataclass(frozen=True)
class Measurement:
    """Canary and baseline over the same window, with what was asked to get them.

    `problems` are reasons the provider itself does not trust a figure (say, request
    series without the error label), each naming where it came from; any problem
    makes the look inconclusive.
    """

    window: Window
    canary: VersionSample
    baseline: VersionSample
    queries: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


class MetricsProvider(ABC):
    """Reads request, error and latency figures for canary and baseline.

    `fresh_every` is how often new figures can appear (seconds): the rollout
    looks that often for obvious failure, however long its analysis interval.
    None means no faster than the analysis interval.
    """

    fresh_every: float | None = None

    def follow(self, placement: Placement) -> None:  # noqa: B027 - optional hook
        """The rollout's slots and versions; providers whose targets are templates over them
        render them here, before anything else is read. Raises `ConfigError` when a
        template needs what the rollout does not know."""

    def ready(self) -> None:  # noqa: B027 - optional hook
        """Raise `ProviderError` if figures cannot be read now (checked before traffic moves)."""

    def versions(self) -> dict[str, frozenset[str]]:
        """The `version` label values of the canary's and the baseline's request series.

        Keyed "canary" and "baseline"; a role whose series carry no version label is
        left out. Checked before traffic moves, so the processes read are the ones
        the slots hold.
        """
        return {}

    def missing(self, placement: Placement) -> list[str]:
        """What the provider cannot find of the versions the slots should serve.

        A provider that selects canary and baseline by version (not by where it
        reads) says here when it finds no series of one: the wrong artifact was
        deployed, or it is not where the provider looks. Checked before traffic
        moves; each entry names the selection and what it found instead.
        """
        return []

    def source(self, role: str) -> str:
        """Where the `role` ("canary" or "baseline") figures come from, for messages."""
        return role

    def window_opened(self, at: float) -> None:  # noqa: B027 - optional hook
        """An analysis window starts at `at`; providers that diff counters snapshot here."""

    @abstractmethod
    def measure(self, window: Window) -> Measurement:
        """Figures for `window`; raises `ProviderError` when they cannot be read."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
