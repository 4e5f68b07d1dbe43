"""The history-store interface and the records it keeps.

The store is the memory of every rollout: deployments and their outcome, each
state the rollout machine passed through (so a new process can resume it),
every decision with the inputs it was made from, and smoke-test results.
Records are plain frozen dataclasses; JSON-able payloads are `dict[str, Any]`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeploymentRecord:
    """One rollout of one version of a service to one environment."""

    id: str
    service: str
    environment: str
    version: str
    started_at: float
    commit_sha: str | None = None
    commit_time: float | None = None
    finished_at: float | None = None
    outcome: str | None = None  # promoted | rolled_back | paused | aborted | failed
    reason: str | None = None  # rollback reason vocabulary, see DESIGN
    max_weight: int = 0

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class DecisionRecord:
    """A decision of the rollout, stored before it is acted on, with all its inputs."""

    deployment_id: str
    at: float
    action: str  # continue | advance | promote | rollback | pause | abort | resume
    step: int
    weight: int
    result: str  # pass | fail | inconclusive | error | manual | hook
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # assigned by the store


@dataclass(frozen=True)
class SmokeTestRecord:
    """The result of one smoke test run against the canary before traffic moved."""

    deployment_id: str
    service: str
    environment: str
    name: str
    passed: bool
    duration: float
    at: float
    detail: str = ""


class Store(ABC):
    """Durable deployment history; every write is committed before the call returns."""

    @abstractmethod
    def create_deployment(self, record: DeploymentRecord) -> None:
        """Insert a new deployment; `StoreError` if the id exists."""

    @abstractmethod
    def update_deployment(
        self,
        deployment_id: str,
        *,
        outcome: str | None = None,
        reason: str | None = None,
        finished_at: float | None = None,
        max_weight: int | None = None,
    ) -> DeploymentRecord:
        """Set the given fields (None leaves a field as it is) and return the new record."""

    @abstractmethod
    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        """The deployment, or None."""

    @abstractmethod
    def list_deployments(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[DeploymentRecord]:
        """Deployments, newest first, filtered by the given fields."""

    @abstractmethod
    def save_state(self, deployment_id: str, at: float, state: dict[str, Any]) -> None:
        """Append a rollout-state snapshot (the machine's state after a transition)."""

    @abstractmethod
    def load_state(self, deployment_id: str) -> dict[str, Any] | None:
        """The latest state snapshot, or None."""

    @abstractmethod
    def state_history(self, deployment_id: str) -> list[tuple[float, dict[str, Any]]]:
        """Every state snapshot of a deployment, oldest first."""

    @abstractmethod
    def add_decision(self, record: DecisionRecord) -> DecisionRecord:
        """Store a decision; returns it with its sequence number."""

    @abstractmethod
    def decisions(self, deployment_id: str) -> list[DecisionRecord]:
        """Every decision of a deployment, in order."""

    @abstractmethod
    def add_smoke_test(self, record: SmokeTestRecord) -> None:
        """Store a smoke-test result."""

    @abstractmethod
    def smoke_tests(
        self,
        *,
        deployment_id: str | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> list[SmokeTestRecord]:
        """Smoke-test results, oldest first, filtered by the given fields."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection pool."""
