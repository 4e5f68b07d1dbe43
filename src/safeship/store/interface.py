"""The history-store interface and the records it keeps.

The store is the memory of every rollout: deployments and their outcome, each
state the rollout machine passed through (so a new process can resume it),
every decision with the inputs it was made from, smoke-test results, and the
running totals of counters that have no history row of their own (Prometheus
queries, canary-analysis check results; see `safeship.metrics`).
Records are plain frozen dataclasses; JSON-able payloads are `dict[str, Any]`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) the rollout lock of a service and environment."""

    deployment_id: str
    holder: str  # host and process id
    acquired_at: float


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
    # Why commit_time is None, so the report can say why lead time is missing (a
    # `CommitTimeMissing` value); None when it has one, or nobody recorded why.
    commit_time_missing: str | None = None
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


@dataclass(frozen=True)
class CounterIncrement:
    """An amount to add to one counter series.

    A series is identified by `service`, `environment` ("" for a metric without
    one), `name` (the sample name, e.g. `prometheus_query_duration_seconds_bucket`)
    and its other `labels`.
    """

    service: str
    environment: str
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class CounterRecord:
    """The running total of one counter series (identified as in `CounterIncrement`)."""

    service: str
    environment: str
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class DashboardVersionRecord:
    """A Grafana dashboard changed by safeship: its version before and after.

    `action` is "push" (`safeship dashboards push`) or "rollback" (a restore);
    `version_before` is None when the push created the dashboard.
    """

    deployment_id: str
    uid: str
    version_before: int | None
    version_after: int
    at: float
    action: str = "push"


@dataclass(frozen=True)
class SlotAssignment:
    """Which version each slot of a service serves, after one change of it.

    `change` is what changed: "deployed" (a rollout put `canary_version` into the
    canary slot), "promoted" (that slot became the stable one), "rolled_back" or
    "aborted" (the stable slot serves everything again; the canary slot keeps
    what was deployed into it). A version is None when no record says.
    """

    service: str
    environment: str
    at: float
    deployment_id: str
    change: str
    stable_slot: str
    stable_version: str | None
    canary_slot: str
    canary_version: str | None


def canonical_labels(labels: Mapping[str, str]) -> str:
    """The stored form of a counter's labels: JSON with sorted keys, so equal labels match."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


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
    def unfinished_deployments(self, service: str, environment: str) -> list[DeploymentRecord]:
        """Deployments of a service to an environment that have no outcome yet, oldest first."""

    @abstractmethod
    def rollout_lock(
        self, service: str, environment: str, deployment_id: str, at: float
    ) -> AbstractContextManager[LockHolder | None]:
        """Hold the one rollout lock of `service` in `environment` for the `with` block.

        Never waits: another live holder raises `RolloutLockedError` naming it. The
        lock dies with its holder (however it died); the block then gets the dead
        holder's record, to say whose rollout it takes over, else None.
        """

    @abstractmethod
    def save_state(
        self, deployment_id: str, at: float, state: dict[str, Any], *, after: int | None = None
    ) -> int:
        """Append a rollout-state snapshot (the machine's state after a transition).

        Returns its sequence number. With `after`, the snapshot is written only if
        the latest one still has that number (compare-and-swap), else
        `StateConflictError`: someone else changed the rollout meanwhile.
        """

    @abstractmethod
    def latest_state(self, deployment_id: str) -> tuple[int, dict[str, Any]] | None:
        """The latest state snapshot with its sequence number, or None."""

    def load_state(self, deployment_id: str) -> dict[str, Any] | None:
        """The latest state snapshot, or None."""
        latest = self.latest_state(deployment_id)
        return None if latest is None else latest[1]

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
    def add_to_counters(self, increments: Sequence[CounterIncrement]) -> None:
        """Add each increment to its counter (created at 0), all in one transaction.

        Either every increment is applied or, on `StoreError`, none is.
        """

    @abstractmethod
    def counters(self, *, service: str | None = None) -> list[CounterRecord]:
        """Every counter's running total, optionally of one service only.

        Ordered by service, environment, name and labels.
        """

    @abstractmethod
    def add_dashboard_version(self, record: DashboardVersionRecord) -> None:
        """Record a dashboard version change made for a deployment."""

    @abstractmethod
    def dashboard_versions(self, deployment_id: str) -> list[DashboardVersionRecord]:
        """The dashboard version changes of a deployment, oldest first."""

    @abstractmethod
    def record_slots(self, record: SlotAssignment) -> None:
        """Append one change of which version each slot serves."""

    @abstractmethod
    def slot_history(
        self, service: str, environment: str, *, limit: int | None = None
    ) -> list[SlotAssignment]:
        """The changes of a service's slots in an environment, newest first."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection pool."""
