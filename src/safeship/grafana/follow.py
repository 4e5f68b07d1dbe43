"""Grafana following a rollout: a region annotation for its span, and its dashboards
rolled back with it when it fails.

Grafana is a view of the deployment, never a reason to stop one: everything
here turns failures into warnings for the caller to print.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safeship.config import GrafanaSettings
from safeship.errors import SafeshipError
from safeship.grafana.annotations import Regions, finish_region, start_region
from safeship.grafana.client import GrafanaClient
from safeship.grafana.sync import rollback
from safeship.rollout.machine import Outcome, RolloutState
from safeship.store.interface import Store


@dataclass
class DashboardFollower:
    client: GrafanaClient
    settings: GrafanaSettings
    store: Store
    regions: Regions | None = None
    warnings: list[str] = field(default_factory=list)

    def started(self, state: RolloutState) -> list[str]:
        """Open the rollout's region on the configured dashboards."""
        self.regions = start_region(
            self.client,
            self.settings.annotate,
            service=state.service,
            environment=state.environment,
            version=state.version,
            deployment_id=state.deployment_id,
        )
        return list(self.regions.warnings)

    def finished(self, state: RolloutState) -> list[str]:
        """Close the region with the outcome; restore the dashboards of a failed rollout."""
        warnings: list[str] = []
        outcome = state.outcome
        if self.regions is not None and outcome is not None:
            text = "promoted" if outcome is Outcome.PROMOTED else outcome.value.replace("_", " ")
            warnings += finish_region(
                self.client,
                self.regions,
                outcome=text,
                reason=state.reason.value if state.reason else None,
            )
        failed = outcome in (Outcome.ROLLED_BACK, Outcome.ABORTED, Outcome.FAILED)
        if failed and self.settings.rollback_on_failure:
            try:
                results = rollback(
                    self.client,
                    self.store,
                    service=state.service,
                    deployment_id=state.deployment_id,
                )
            except SafeshipError as exc:
                warnings.append(f"dashboards not rolled back: {exc}")
            else:
                warnings += [f"dashboard {r.uid}: {r.detail}" for r in results if not r.ok]
        return warnings
