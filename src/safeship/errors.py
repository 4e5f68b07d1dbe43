"""One error hierarchy for safeship; retry intent lives in the type.

    SafeshipError
    ├── ConfigError              bad safeship.yaml / env / usage (exit 2)
    ├── RolloutRefusedError      not verified before traffic moved: nothing moved (exit 3)
    ├── RolloutLockedError       another rollout holds the service (exit 5)
    ├── PermanentError           retrying will not help
    │   ├── StoreError           history store unusable
    │   ├── RolloutStateError    a transition that the state does not allow
    │   └── RollbackIncompleteError  weight 0 not confirmed: resume it later
    └── TransientError           may succeed if retried (carries a delay)
        ├── ProviderError        metrics could not be read
        ├── RouterError          traffic weight could not be set or confirmed
        └── StoreUnavailableError  the history database did not answer

Callers retry `TransientError` with backoff (or after `retry_after` seconds when
the other side asked for a delay), up to their limit; anything else stops at once.
"""

from __future__ import annotations


class SafeshipError(Exception):
    """Base of every error safeship raises on purpose."""


class ConfigError(SafeshipError):
    """The configuration or the command line is wrong; the message says where and how to fix it."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class PermanentError(SafeshipError):
    """An error that retrying will not fix."""


class StoreError(PermanentError):
    """The history store could not be opened, migrated or written."""


class RolloutStateError(PermanentError):
    """A rollout transition was asked for that its current state does not allow."""


class StateConflictError(RolloutStateError):
    """Another process saved a newer state of the rollout than the one this one changed.

    The controller that gets it stops deciding and follows what the other did
    (a person aborted or promoted the rollout from another terminal).
    """


class RolloutRefusedError(SafeshipError):
    """Checks before any traffic moved failed (canary slot busy, wrong processes): exit 3."""


class RolloutLockedError(SafeshipError):
    """Another live process is driving a rollout of the same service and environment."""


class RollbackIncompleteError(PermanentError):
    """A rollback is recorded but the router did not confirm weight 0; `resume` finishes it."""


class TransientError(SafeshipError):
    """An error that may go away; `retry_after` is a delay the other side asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(TransientError):
    """A metrics provider failed to answer (unreachable, bad response, counter reset)."""


class StoreUnavailableError(TransientError):
    """The history database could not be reached (refused, locked, timed out)."""


class RouterError(TransientError):
    """A router failed to set or confirm a weight."""
