"""The plan's measurable outcomes: each a ratio of counted records against its target.

A target with nothing to count (a zero denominator, or a figure safeship does not
record) is "no data", never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"


@dataclass(frozen=True)
class Target:
    """`value <comparison> threshold` passes; `counts` says which records the ratio is of."""

    key: str
    name: str
    comparison: str  # ">", "<" or ">=" (for "100%": nothing may fail)
    threshold: float
    counts: str

    def describe(self) -> str:
        if self.comparison == ">=" and self.threshold == 1.0:
            return "100%"
        return f"{self.comparison} {self.threshold:.0%}"

    def met_by(self, value: float) -> bool:
        if self.comparison == ">":
            return value > self.threshold
        if self.comparison == "<":
            return value < self.threshold
        return value >= self.threshold


DEPLOYMENT_SUCCESS = Target(
    "deployment_success_rate",
    "Deployment success rate",
    ">",
    0.95,
    "promoted / finished deployments",
)
ROLLBACK = Target(
    "rollback_rate",
    "Rollback rate",
    "<",
    0.05,
    "rolled back or aborted / finished deployments",
)
SMOKE_TESTS = Target(
    "smoke_test_pass_rate",
    "Smoke test pass rate",
    ">",
    0.98,
    "passed / smoke tests run in the period",
)
PROMETHEUS_QUERIES = Target(
    "prometheus_query_success_rate",
    "Prometheus query success rate",
    ">",
    0.90,
    "successful / Prometheus queries (all-time counters)",
)
GRAFANA_UPDATES = Target(
    "grafana_update_success_rate",
    "Grafana update success",
    ">=",
    1.0,
    "successful / attempted dashboard updates",
)
CANARY_ROLLBACK = Target(
    "canary_rollback_rate",
    "Canary rollback rate",
    "<",
    0.02,
    "production canaries rolled back by analysis / finished production canaries",
)
TARGETS = (
    DEPLOYMENT_SUCCESS,
    ROLLBACK,
    SMOKE_TESTS,
    PROMETHEUS_QUERIES,
    GRAFANA_UPDATES,
    CANARY_ROLLBACK,
)


@dataclass(frozen=True)
class Outcome:
    """One target judged: `value` is `numerator / denominator`, None without data."""

    target: Target
    numerator: float
    denominator: float
    note: str = ""

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator > 0 else None

    @property
    def status(self) -> Status:
        value = self.value
        if value is None:
            return Status.NO_DATA
        return Status.PASS if self.target.met_by(value) else Status.FAIL
