"""Exit codes are part of safeship's interface; scripts and CI branch on them."""

from __future__ import annotations

from enum import IntEnum

from safeship.rollout.machine import Outcome


class ExitCode(IntEnum):
    OK = 0  # success / promoted
    FAILED = 1  # rolled back, aborted, or a check failed
    USAGE = 2  # bad config or usage
    UNAVAILABLE = 3  # infrastructure unavailable before anything changed
    PAUSED = 4  # waiting for a person
    LOCKED = 5  # another rollout of the same service and environment holds the lock


def for_outcome(outcome: Outcome | None) -> ExitCode:
    if outcome is Outcome.PROMOTED:
        return ExitCode.OK
    if outcome is Outcome.PAUSED:
        return ExitCode.PAUSED
    return ExitCode.FAILED
