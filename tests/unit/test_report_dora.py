"""DORA keys and outcome counts of `safeship report` on a hand-made history, exactly.

The history (period 2026-01-01 to 2026-01-10, UTC) is written so that every figure
can be worked out by hand; each test names the records its numbers come from.
It runs on SQLite and on PostgreSQL, since the report's SQL is meant for both.
"""

from __future__ import annotations

import pytest

from safeship.report.build import Report, report_from_url
from safeship.report.dora import (
    Tier,
    change_failure_tier,
    frequency_tier,
    lead_time_tier,
    restore_tier,
)
from safeship.report.period import DAY, Period
from safeship.report.queries import Scope
from safeship.report.render_json import report_to_dict
from safeship.report.render_markdown import render_markdown
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
H = 3600.0
M = 60.0
PERIOD = Period(T0, T0 + 10 * DAY)


def _deployment(
    id: str,
    started: float,
    outcome: str | None,
    *,
    service: str = "api",
    environment: str = "production",
    finished_after: float = 10 * M,
    commit_before: float | None = None,
    reason: str | None = None,
    weight: int = 100,
    missing: str | None = None,
) -> DeploymentRecord:
    return DeploymentRecord(
        id=id,
        service=service,
        environment=environment,
        version=id,
        started_at=T0 + started,
        commit_time=None if commit_before is None else T0 + started - commit_before,
        commit_time_missing=missing,
        finished_at=None if outcome in (None, "paused") else T0 + started + finished_after,
        outcome=outcome,
        reason=reason,
        max_weight=weight,
    )


HISTORY = [
    _deployment("d0", -H, "promoted", commit_before=H),  # before the period
    _deployment("d1", H, "promoted", commit_before=30 * M),  # lead 40m
    _deployment("d2", DAY, "promoted", commit_before=2 * H),  # lead 2h10m
    _deployment("d3", 2 * DAY, "rolled_back", reason="high_error_rate", weight=10),
    _deployment("d4", 2 * DAY + H, "failed", reason="router_error", weight=10),
    _deployment(  # restores d3+d4 at 2d 3h20m; lead 1h20m
        "d5", 2 * DAY + 3 * H, "promoted", commit_before=H, finished_after=20 * M
    ),
    _deployment("d6", 3 * DAY, "promoted"),  # no commit time
    _deployment("d7", 4 * DAY, "aborted", reason="manual", weight=50),  # never restored
    _deployment("d9", 5 * DAY, "rolled_back", service="web", reason="high_latency", weight=50),
    _deployment(  # restores d9 one hour after it started; lead 1h
        "d10",
        5 * DAY + 30 * M,
        "promoted",
        service="web",
        commit_before=30 * M,
        finished_after=30 * M,
    ),
    _deployment("d11", DAY, "promoted", environment="staging", commit_before=H),  # lead 1h10m
    _deployment("d12", 6 * DAY, "paused", environment="staging", weight=50),
    _deployment("d13", 10 * DAY, "promoted", commit_before=H),  # at the (exclusive) end
]


@pytest.fixture
def history(store_url: str) -> str:
    store = open_store(store_url)
    try:
        for record in HISTORY:
            store.create_deployment(record)
    finally:
        store.close()
    return store_url


def _report(url: str, **scope: str) -> Report:
    return report_from_url(url, Scope(PERIOD, **scope), T0 + 20 * DAY)


def test_deployment_frequency_counts_production_promotions_per_day(history: str) -> None:
    keys = _report(history).dora
    assert keys.promotions == 5  # d1 d2 d5 d6 d10
    assert keys.per_day == pytest.approx(0.5)
    assert keys.tiers["deployment_frequency"] is Tier.HIGH


def test_lead_time_is_commit_to_promotion_without_commit_time_excluded(history: str) -> None:
    keys = _report(history).dora
    assert keys.lead_times == [40 * M, 60 * M, 80 * M, 130 * M]  # d1 d10 d5 d2
    assert keys.lead_time_excluded == 1  # d6
    assert keys.lead_time(50) == pytest.approx(70 * M)
    assert keys.lead_time(90) == pytest.approx(80 * M + 0.7 * 50 * M)
    assert keys.tiers["lead_time"] is Tier.HIGH


def _store_of(store_url: str, records: list[DeploymentRecord]) -> str:
    store = open_store(store_url)
    try:
        for record in records:
            store.create_deployment(record)
    finally:
        store.close()
    return store_url


def test_the_report_says_how_many_promotions_lacked_a_commit_time_and_why(
    store_url: str,
) -> None:
    url = _store_of(
        store_url,
        [
            _deployment("p1", H, "promoted", commit_before=H),
            _deployment("p2", 2 * H, "promoted", missing="sha_not_in_checkout"),
            _deployment("p3", 3 * H, "promoted", missing="sha_not_in_checkout"),
            _deployment("p4", 4 * H, "promoted"),  # from before the reason was recorded
            _deployment("r1", 5 * H, "rolled_back", missing="no_sha"),  # not a promotion
            _deployment("s1", 6 * H, "promoted", environment="staging", missing="no_git"),
        ],
    )
    report = _report(url)
    keys = report.dora
    assert keys.lead_times == [70 * M]
    assert keys.lead_time_missing == {"sha_not_in_checkout": 2, "not_recorded": 1}
    assert keys.lead_time_excluded == 3
    lines = render_markdown(report).splitlines()
    assert (
        "Lead time: 3 of 4 promotions to production had no commit time: "
        "2 no --commit-time / SAFESHIP_COMMIT_TIME and sha not in the checkout; "
        "1 with no reason recorded, as older rollouts and those not run by `safeship "
        "rollout` record none: --commit-time / SAFESHIP_COMMIT_TIME, or a --commit-sha in "
        "the rollout's checkout, provides it.  "
    ) in lines
    lead_time = report_to_dict(report)["dora"]["lead_time"]
    assert lead_time["excluded_without_commit_time"] == 3
    assert lead_time["without_commit_time"] == {"sha_not_in_checkout": 2, "not_recorded": 1}
    staging = {row.name: row for row in report.by_environment}["staging"]
    assert staging.dora.lead_time_missing == {"no_git": 1}


def test_with_no_commit_time_at_all_lead_time_is_no_data_and_the_report_says_why(
    store_url: str,
) -> None:
    url = _store_of(
        store_url,
        [
            _deployment("p1", H, "promoted", missing="sha_not_in_checkout"),
            _deployment("p2", 2 * H, "promoted", missing="sha_not_in_checkout"),
        ],
    )
    markdown = render_markdown(_report(url))
    assert "| Lead time for changes | no data |" in markdown
    assert (
        "Lead time: 2 of 2 promotions to production had no commit time "
        "(no --commit-time / SAFESHIP_COMMIT_TIME and sha not in the checkout)."
    ) in markdown


def test_a_reason_the_report_does_not_know_is_shown_as_stored(store_url: str) -> None:
    url = _store_of(store_url, [_deployment("p1", H, "promoted", missing="built elsewhere")])
    assert (
        "Lead time: 1 of 1 promotions to production had no commit time (reason 'built elsewhere')."
    ) in render_markdown(_report(url))


def test_with_every_commit_time_known_the_report_says_nothing_about_it(history: str) -> None:
    report = _report(history, service="web")
    assert report.dora.lead_time_missing == {}
    assert "had no commit time" not in render_markdown(report)


def test_change_failure_rate_is_unpromoted_over_finished_production(history: str) -> None:
    keys = _report(history).dora
    assert (keys.failed, keys.finished) == (4, 9)  # d3 d4 d7 d9 of d1-d7 d9 d10
    assert keys.change_failure_rate == pytest.approx(4 / 9)
    assert keys.tiers["change_failure_rate"] is Tier.LOW


def test_time_to_restore_counts_consecutive_failures_as_one_episode(history: str) -> None:
    keys = _report(history).dora
    # api: d3 (2d) .. d5 ends 2d 3h20m; web: d9 (5d) .. d10 ends 5d 1h; d7 never restored.
    assert sorted(keys.restore_times) == pytest.approx([H, 3 * H + 20 * M])
    assert keys.unrestored == 1
    assert keys.restore_median == pytest.approx((H + 3 * H + 20 * M) / 2)
    assert keys.tiers["time_to_restore"] is Tier.HIGH


def test_outcome_counts_cover_every_environment_started_in_the_period(history: str) -> None:
    report = _report(history)
    counts = report.counts
    assert counts.deployments == 11  # d1-d7 d9-d12: not d0 (before), not d13 (at the end)
    assert (counts.finished, counts.promoted, counts.rolled_back, counts.failed) == (10, 6, 3, 1)
    values = {o.target.key: o.value for o in report.outcomes}
    assert values["deployment_success_rate"] == pytest.approx(0.6)
    assert values["rollback_rate"] == pytest.approx(0.3)  # d3 d7 d9
    assert values["canary_rollback_rate"] == pytest.approx(2 / 9)  # d3 d9 of 9 canaries


def test_breakdowns_per_service_and_environment(history: str) -> None:
    report = _report(history)
    services = {row.name: row for row in report.by_service}
    assert sorted(services) == ["api", "web"]
    assert services["api"].counts.deployments == 9
    assert services["api"].dora.promotions == 4  # production only: d1 d2 d5 d6
    assert services["web"].dora.lead_times == [60 * M]
    envs = {row.name: row for row in report.by_environment}
    assert envs["staging"].counts.deployments == 2
    assert envs["staging"].counts.unfinished == 1
    assert envs["staging"].dora.lead_times == [70 * M]
    assert envs["production"].dora.change_failure_rate == pytest.approx(4 / 9)


def test_filters_narrow_every_figure(history: str) -> None:
    report = _report(history, service="web")
    assert report.counts.deployments == 2
    assert report.dora.restore_times == [H]
    staging = _report(history, environment="staging")
    assert staging.dora.per_day is None  # no production deployment in scope: no data


def test_series_count_each_day_and_week(history: str) -> None:
    report = _report(history)
    assert len(report.days) == 10
    day2 = report.days[2]
    assert (day2.promoted, day2.rolled_back, day2.failed) == (1, 1, 1)
    assert report.weekly_promotions == [(T0, 5), (T0 + 7 * DAY, 0)]


def test_an_empty_period_has_no_data_and_no_tiers(history: str) -> None:
    report = report_from_url(history, Scope(Period(T0 + 30 * DAY, T0 + 40 * DAY)), T0)
    assert report.empty
    assert report.dora.per_day is None
    assert set(report.dora.tiers.values()) == {None}


@pytest.mark.parametrize(
    ("per_day", "tier"),
    [
        (1.01, Tier.ELITE),
        (1.0, Tier.HIGH),
        (1 / 30, Tier.HIGH),
        (1 / 30 - 1e-9, Tier.MEDIUM),
        (1 / 180, Tier.MEDIUM),
        (1 / 180 - 1e-9, Tier.LOW),
    ],
)
def test_frequency_tier_boundaries(per_day: float, tier: Tier) -> None:
    assert frequency_tier(per_day) is tier


@pytest.mark.parametrize(
    ("seconds", "tier"),
    [
        (H - 1, Tier.ELITE),
        (H, Tier.HIGH),
        (7 * DAY, Tier.HIGH),
        (7 * DAY + 1, Tier.MEDIUM),
        (180 * DAY, Tier.MEDIUM),
        (180 * DAY + 1, Tier.LOW),
    ],
)
def test_lead_time_tier_boundaries(seconds: float, tier: Tier) -> None:
    assert lead_time_tier(seconds) is tier


@pytest.mark.parametrize(
    ("seconds", "tier"),
    [
        (H - 1, Tier.ELITE),
        (H, Tier.HIGH),
        (DAY - 1, Tier.HIGH),
        (DAY, Tier.MEDIUM),
        (180 * DAY, Tier.MEDIUM),
        (180 * DAY + 1, Tier.LOW),
    ],
)
def test_time_to_restore_tier_boundaries(seconds: float, tier: Tier) -> None:
    assert restore_tier(seconds) is tier


@pytest.mark.parametrize(
    ("rate", "tier"),
    [
        (0.0, Tier.ELITE),
        (0.15, Tier.ELITE),
        (0.151, Tier.HIGH),
        (0.30, Tier.HIGH),
        (0.301, Tier.LOW),
    ],
)
def test_change_failure_tier_boundaries(rate: float, tier: Tier) -> None:
    assert change_failure_tier(rate) is tier
