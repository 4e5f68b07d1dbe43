"""Injected clocks: the rollout loop never calls `time.time()` itself.

`SystemClock` is used in production; `VirtualClock` lets tests and simulations
run hours of rollout in milliseconds, because `sleep` only moves its hands.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the rollout loop needs from time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (real or virtual)."""
        ...


class SystemClock:
    """Wall-clock time; `sleep` really blocks."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that moves only when slept on or advanced, for tests and simulation."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
