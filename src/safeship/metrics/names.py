"""The fixed names of safeship's metrics: metric names, buckets, label vocabularies.

They are part of safeship's public contract (users' dashboards and alert rules are
written against them) and are re-exported by `safeship.metrics`.
"""

from __future__ import annotations

from safeship.store.interface import DeploymentRecord

# --- Metric names (fixed: dashboards and alerts depend on them) ------------------

DEPLOYMENT_TOTAL = "deployment_total"
DEPLOYMENT_DURATION_SECONDS = "deployment_duration_seconds"
DEPLOYMENT_ROLLBACK_TOTAL = "deployment_rollback_total"
DEPLOYMENT_FREQUENCY = "deployment_frequency"
CANARY_TRAFFIC_PERCENTAGE = "canary_traffic_percentage"
SMOKE_TEST_TOTAL = "smoke_test_total"
SMOKE_TEST_DURATION_SECONDS = "smoke_test_duration_seconds"
PROMETHEUS_QUERY_TOTAL = "prometheus_query_total"
GRAFANA_UPDATE_TOTAL = "grafana_update_total"
PROMETHEUS_QUERY_DURATION_SECONDS = "prometheus_query_duration_seconds"
CANARY_ANALYSIS_TOTAL = "canary_analysis_total"
ROLLOUT_IN_PROGRESS = "rollout_in_progress"
ROLLOUT_STARTED_TIMESTAMP_SECONDS = "rollout_started_timestamp_seconds"

# --- Buckets and label vocabularies (fixed as well) -------------------------------

DEPLOYMENT_DURATION_BUCKETS: tuple[float, ...] = (60, 120, 300, 600, 1800, 3600)
SMOKE_TEST_DURATION_BUCKETS: tuple[float, ...] = (10, 30, 60, 120, 300)
PROMETHEUS_QUERY_DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 2, 5, 10)

DEPLOYMENT_STATUSES: tuple[str, ...] = ("success", "failed", "rolled_back")
#: Store outcome -> `status` label. Outcomes not listed (`paused`, None) are unfinished.
OUTCOME_STATUS: dict[str, str] = {
    "promoted": "success",
    "rolled_back": "rolled_back",
    "aborted": "rolled_back",
    "failed": "failed",
}
ROLLBACK_REASONS: tuple[str, ...] = (
    "smoke_test_failed",
    "high_error_rate",
    "high_latency",
    "crash_loop",
    "provider_error",
    "no_data",
    "router_error",
    "hook_failed",
    "manual",
    "interrupted",
)
SMOKE_TEST_RESULTS: tuple[str, ...] = ("passed", "failed")
PROMETHEUS_QUERY_RESULTS: tuple[str, ...] = ("success", "failed", "timeout")
#: Dashboard pushes and restores, one per dashboard: the plan's "Grafana update success".
GRAFANA_UPDATE_RESULTS: tuple[str, ...] = ("success", "failed")
ANALYSIS_RESULTS: tuple[str, ...] = ("pass", "fail", "inconclusive", "error")

_SECONDS_PER_HOUR = 3600.0


def _is_finished(record: DeploymentRecord) -> bool:
    return record.outcome in OUTCOME_STATUS


def _le(bound: float) -> str:
    """The `le` label value prometheus_client itself uses for a bucket bound."""
    return repr(float(bound))
