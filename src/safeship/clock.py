"""Injected clocks: the rollout loop never calls `time.time()` itself.

`SystemClock` is used in production; `VirtualClock` lets tests and simulations
run hours of rollout in milliseconds, because `sleep` only moves its hands.

Two readings: `now()` is the wall clock, which is what records say (and what
Prometheus queries are placed at); `monotonic()` only ever moves forward at the
pace of real time, so holds, warm-ups, intervals and pause timeouts measured
on it are never shortened or stretched when the wall clock is stepped (NTP,
a VM resumed, a person setting the date).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the rollout loop needs from time."""

    def now(self) -> float:
        """Seconds since the epoch (wall clock: for records and queries)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never stepped (for durations)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (real or virtual)."""
        ...


class SystemClock:
    """Wall-clock time; `sleep` really blocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that moves only when slept on or advanced, for tests and simulation.

    `step_wall` moves the wall clock alone, as NTP or a person might.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
            self._monotonic += seconds

    def step_wall(self, seconds: float) -> None:
        self._now += seconds
