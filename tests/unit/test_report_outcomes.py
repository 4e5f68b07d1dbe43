"""The outcome targets of `safeship report`: pass, fail at the boundary, and no data."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeship.metrics.names import GRAFANA_UPDATE_TOTAL, PROMETHEUS_QUERY_TOTAL
from safeship.report.build import Report, report_from_url
from safeship.report.outcomes import TARGETS, Outcome, Status
from safeship.report.period import DAY, Period
from safeship.report.queries import Scope
from safeship.store import open_store
from safeship.store.interface import CounterIncrement, DeploymentRecord, SmokeTestRecord

T0 = 1767225600.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


def _report(url: str) -> dict[str, Outcome]:
    report: Report = report_from_url(url, Scope(Period(T0, T0 + DAY)), T0 + DAY)
    return {o.target.key: o for o in report.outcomes}


def _fill(
    url: str,
    *,
    smoke: tuple[int, int] = (0, 0),
    queries: dict[str, float] | None = None,
    updates: dict[str, float] | None = None,
    deployments: list[tuple[str, str | None, int]] | None = None,
) -> None:
    store = open_store(url)
    try:
        for index, (outcome, reason, weight) in enumerate(deployments or []):
            store.create_deployment(
                DeploymentRecord(
                    id=f"d{index}",
                    service="api",
                    environment="production",
                    version="v1",
                    started_at=T0 + index,
                    finished_at=T0 + index + 1,
                    outcome=outcome,
                    reason=reason,
                    max_weight=weight,
                )
            )
        passed, failed = smoke
        if passed + failed:
            store.create_deployment(
                DeploymentRecord("s", "api", "staging", "v1", started_at=T0 - DAY)
            )
        for index in range(passed + failed):
            store.add_smoke_test(
                SmokeTestRecord("s", "api", "staging", "healthz", index < passed, 0.1, T0 + index)
            )
        store.add_to_counters(
            [
                CounterIncrement(
                    "api", "", PROMETHEUS_QUERY_TOTAL, {"workflow": "analysis", "result": r}, v
                )
                for r, v in (queries or {}).items()
            ]
            + [
                CounterIncrement(
                    "api", "", GRAFANA_UPDATE_TOTAL, {"action": "push", "result": r}, v
                )
                for r, v in (updates or {}).items()
            ]
        )
    finally:
        store.close()


def test_an_empty_history_judges_nothing_as_passed(url: str) -> None:
    outcomes = _report(url)
    assert [o.target for o in outcomes.values()] == list(TARGETS)
    assert {o.status for o in outcomes.values()} == {Status.NO_DATA}
    assert {o.value for o in outcomes.values()} == {None}


def test_smoke_test_pass_rate_must_exceed_98_percent(url: str) -> None:
    _fill(url, smoke=(49, 1))
    smoke = _report(url)["smoke_test_pass_rate"]
    assert smoke.value == pytest.approx(0.98)
    assert smoke.status is Status.FAIL  # exactly 98% is not above it


def test_smoke_tests_pass_above_the_target(url: str) -> None:
    _fill(url, smoke=(99, 1))
    assert _report(url)["smoke_test_pass_rate"].status is Status.PASS


def test_prometheus_query_success_rate_comes_from_the_query_counters(url: str) -> None:
    _fill(url, queries={"success": 9.0, "failed": 0.5, "timeout": 0.5})
    queries = _report(url)["prometheus_query_success_rate"]
    assert (queries.numerator, queries.denominator) == (9.0, 10.0)
    assert queries.status is Status.FAIL  # 90% is not above 90%
    _fill(url, queries={"success": 1.0})
    assert _report(url)["prometheus_query_success_rate"].status is Status.PASS


def test_grafana_update_success_comes_from_the_update_counters_and_must_be_100(
    url: str,
) -> None:
    _fill(url, deployments=[("promoted", None, 100)])
    assert _report(url)["grafana_update_success_rate"].status is Status.NO_DATA
    _fill(url, updates={"success": 19.0, "failed": 1.0})
    grafana = _report(url)["grafana_update_success_rate"]
    assert (grafana.numerator, grafana.denominator) == (19.0, 20.0)
    assert grafana.status is Status.FAIL
    _fill(url, updates={"success": 1.0})
    assert _report(url)["grafana_update_success_rate"].status is Status.FAIL  # 20/21


def test_canary_rollback_rate_counts_only_rollbacks_by_analysis(url: str) -> None:
    # 100 canaries: 1 rolled back by the error-rate check, others for other reasons;
    # a rollback before traffic (weight 0) is not a canary at all.
    _fill(
        url,
        deployments=[
            ("rolled_back", "high_error_rate", 10),
            ("rolled_back", "manual", 50),
            ("rolled_back", "provider_error", 10),
            ("aborted", "high_latency", 10),
            ("rolled_back", "smoke_test_failed", 0),
            *([("promoted", None, 100)] * 96),
        ],
    )
    outcomes = _report(url)
    canary = outcomes["canary_rollback_rate"]
    assert (canary.numerator, canary.denominator) == (1, 100)
    assert canary.status is Status.PASS
    success = outcomes["deployment_success_rate"]
    assert (success.numerator, success.denominator) == (96, 101)
    assert success.status is Status.PASS  # 95.05%
    rollback = outcomes["rollback_rate"]
    assert rollback.value == pytest.approx(5 / 101)
    assert rollback.status is Status.PASS  # 4.95%


def test_rates_at_their_targets_fail(url: str) -> None:
    _fill(url, deployments=[("rolled_back", "high_latency", 10), *[("promoted", None, 100)] * 19])
    outcomes = _report(url)
    assert outcomes["deployment_success_rate"].value == pytest.approx(0.95)
    assert outcomes["deployment_success_rate"].status is Status.FAIL
    assert outcomes["rollback_rate"].value == pytest.approx(0.05)
    assert outcomes["rollback_rate"].status is Status.FAIL
    assert outcomes["canary_rollback_rate"].status is Status.FAIL
