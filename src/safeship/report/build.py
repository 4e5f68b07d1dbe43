"""From the store's aggregates to a `Report`: the figures every renderer shows.

Which records count (the docs repeat this):

* A deployment is in the report when it started in the period and matches
  `--service`/`--env`. Finished = promoted, rolled_back, aborted or failed.
* DORA keys measure the production environment (`--production-env`, default
  `production`): frequency = promotions / days in the period; lead time =
  `finished_at - commit_time` of promotions (those without `commit_time` are left
  out and counted by why); change failure rate = finished but not promoted / finished;
  time to restore = per episode of consecutive failures of one service and
  environment, first failure's start to the end of the next promotion.
* Per service: outcomes over all its environments, DORA keys over its production
  deployments. Per environment: the same figures with that environment measured as
  if it were production.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from safeship.errors import StoreError
from safeship.metrics.names import GRAFANA_UPDATE_TOTAL, PROMETHEUS_QUERY_TOTAL
from safeship.redact import redact_url
from safeship.report import dora, queries
from safeship.report.outcomes import (
    CANARY_ROLLBACK,
    DEPLOYMENT_SUCCESS,
    GRAFANA_UPDATES,
    PROMETHEUS_QUERIES,
    ROLLBACK,
    SMOKE_TESTS,
    Outcome,
)
from safeship.report.period import DAY, WEEK
from safeship.report.queries import CanaryTrace, CubeRow, RestoreEpisode, Scope
from safeship.store import open_store

#: How many rollouts the HTML page traces (canary weight and error rate over time).
TRACED_ROLLOUTS = 3


@dataclass
class Counts:
    """Deployments by outcome class, summed from cube rows."""

    deployments: int = 0
    finished: int = 0
    promoted: int = 0
    rolled_back: int = 0  # rolled_back or aborted, as deployment_total{status} counts them
    failed: int = 0
    canaries: int = 0  # finished with canary traffic (max_weight > 0)
    canary_rollbacks_by_analysis: int = 0
    # why -> promotions without a commit time (see CubeRow.without_commit_time)
    promoted_without_commit_time: dict[str, int] = field(default_factory=dict)

    def add(self, row: CubeRow) -> None:
        self.deployments += row.count
        if row.outcome not in queries.FINISHED_OUTCOMES:
            return
        self.finished += row.count
        if row.outcome == "promoted":
            self.promoted += row.count
            why = row.without_commit_time
            if why is not None:
                missing = self.promoted_without_commit_time
                missing[why] = missing.get(why, 0) + row.count
        elif row.outcome in ("rolled_back", "aborted"):
            self.rolled_back += row.count
        else:
            self.failed += row.count
        self.canaries += row.canaries
        if row.outcome == "rolled_back":
            self.canary_rollbacks_by_analysis += row.canaries_by_analysis

    @property
    def unfinished(self) -> int:
        return self.deployments - self.finished

    @staticmethod
    def of(rows: Iterable[CubeRow]) -> Counts:
        counts = Counts()
        for row in rows:
            counts.add(row)
        return counts


@dataclass(frozen=True)
class DoraKeys:
    """The four keys over one environment's deployments (None = no data)."""

    environment: str
    days: float
    deployments: int
    promotions: int
    lead_times: list[float]  # sorted, of promotions with a commit time
    lead_time_missing: dict[str, int]  # why -> promotions without a commit time
    failed: int
    finished: int
    restore_times: list[float] = field(default_factory=list)
    unrestored: int = 0

    @property
    def lead_time_excluded(self) -> int:
        return sum(self.lead_time_missing.values())

    @property
    def per_day(self) -> float | None:
        return self.promotions / self.days if self.deployments else None

    def lead_time(self, percent: int) -> float | None:
        return queries.quantile(self.lead_times, percent) if self.lead_times else None

    @property
    def change_failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None

    @property
    def restore_median(self) -> float | None:
        return statistics.median(self.restore_times) if self.restore_times else None

    @property
    def tiers(self) -> dict[str, dora.Tier | None]:
        return {
            "deployment_frequency": _tier(self.per_day, dora.frequency_tier),
            "lead_time": _tier(self.lead_time(50), dora.lead_time_tier),
            "change_failure_rate": _tier(self.change_failure_rate, dora.change_failure_tier),
            "time_to_restore": _tier(self.restore_median, dora.restore_tier),
        }


def _tier(value: float | None, tier: Callable[[float], dora.Tier]) -> dora.Tier | None:
    return None if value is None else tier(value)


@dataclass(frozen=True)
class BreakdownRow:
    """One service or environment: its outcome counts and DORA keys."""

    name: str
    counts: Counts
    dora: DoraKeys


@dataclass(frozen=True)
class Day:
    """Deployments started on one day of the period, by outcome class."""

    start: float
    promoted: int
    rolled_back: int
    failed: int
    unfinished: int


@dataclass(frozen=True)
class Report:
    scope: Scope
    generated_at: float
    counts: Counts
    dora: DoraKeys
    outcomes: list[Outcome]
    by_service: list[BreakdownRow]
    by_environment: list[BreakdownRow]
    days: list[Day]
    weekly_promotions: list[tuple[float, int]]  # (week start, production promotions)
    lead_time_histogram: list[int]  # per bar of queries.LEAD_TIME_BOUNDS
    traces: list[CanaryTrace]
    left_out: int = 0  # deployments of the scope's left-out services (the demo's)

    @property
    def empty(self) -> bool:
        return self.counts.deployments == 0


def report_from_url(url: str, scope: Scope, now: float) -> Report:
    """Open (and migrate) the store at `url`, then build the report on its own engine.

    The store object is only used to migrate: the report reads through a plain engine,
    as a reader that never writes needs none of the store's write-path settings.
    """
    open_store(url).close()
    engine: Engine | None = None
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            return build_report(conn, scope, now)
    except SQLAlchemyError as exc:
        raise StoreError(f"history store {redact_url(url)}: reading the report failed") from exc
    finally:
        if engine is not None:
            engine.dispose()


def build_report(conn: Connection, scope: Scope, now: float) -> Report:
    cube = queries.deployment_cube(conn, scope)
    production = [row for row in cube if row.environment == scope.production]
    leads = queries.lead_times(conn, scope)
    episodes = queries.restore_episodes(conn, scope)
    smoke_passed, smoke_run = queries.smoke_test_totals(conn, scope)
    query_results = queries.counter_results(conn, PROMETHEUS_QUERY_TOTAL, scope)
    update_results = queries.counter_results(conn, GRAFANA_UPDATE_TOTAL, scope)
    days = scope.period.days

    def keys(
        environment: str, rows: list[CubeRow], service: str | None, eps: list[RestoreEpisode]
    ) -> DoraKeys:
        counts = Counts.of(rows)
        return DoraKeys(
            environment=environment,
            days=days,
            deployments=counts.deployments,
            promotions=counts.promoted,
            lead_times=_merged(
                values
                for (env, svc), values in leads.items()
                if env == environment and service in (None, svc)
            ),
            lead_time_missing=counts.promoted_without_commit_time,
            failed=counts.finished - counts.promoted,
            finished=counts.finished,
            restore_times=[e.restored_at - e.failed_at for e in eps if e.restored_at is not None],
            unrestored=sum(1 for e in eps if e.restored_at is None),
        )

    prod_episodes = [e for e in episodes if e.environment == scope.production]
    counts = Counts.of(cube)
    prod_counts = Counts.of(production)
    outcomes = [
        Outcome(DEPLOYMENT_SUCCESS, counts.promoted, counts.finished),
        Outcome(ROLLBACK, counts.rolled_back, counts.finished),
        Outcome(SMOKE_TESTS, smoke_passed, smoke_run),
        Outcome(
            PROMETHEUS_QUERIES,
            query_results.get("success", 0.0),
            sum(query_results.values()),
            "all-time counters: they carry no timestamps, so the period does not apply",
        ),
        Outcome(
            GRAFANA_UPDATES,
            update_results.get("success", 0.0),
            sum(update_results.values()),
            "all-time counters of dashboard pushes and restores",
        ),
        Outcome(
            CANARY_ROLLBACK,
            prod_counts.canary_rollbacks_by_analysis,
            prod_counts.canaries,
            f"by analysis: {', '.join(queries.ANALYSIS_REASONS)}",
        ),
    ]

    by_service_rows: dict[str, list[CubeRow]] = defaultdict(list)
    by_env_rows: dict[str, list[CubeRow]] = defaultdict(list)
    for row in cube:
        by_service_rows[row.service].append(row)
        by_env_rows[row.environment].append(row)
    by_service = [
        BreakdownRow(
            service,
            Counts.of(rows),
            keys(
                scope.production,
                [r for r in rows if r.environment == scope.production],
                service,
                [e for e in prod_episodes if e.service == service],
            ),
        )
        for service, rows in sorted(by_service_rows.items())
    ]
    by_environment = [
        BreakdownRow(
            env,
            Counts.of(rows),
            keys(env, rows, None, [e for e in episodes if e.environment == env]),
        )
        for env, rows in sorted(by_env_rows.items())
    ]

    empty = not cube
    dora_keys = keys(scope.production, production, None, prod_episodes)
    return Report(
        scope=scope,
        generated_at=now,
        counts=counts,
        dora=dora_keys,
        outcomes=outcomes,
        by_service=by_service,
        by_environment=by_environment,
        days=_days(scope, cube),
        weekly_promotions=_weeks(scope, production),
        lead_time_histogram=[] if empty else queries.histogram(dora_keys.lead_times),
        traces=[] if empty else queries.canary_traces(conn, scope, TRACED_ROLLOUTS),
        left_out=queries.left_out_count(conn, scope),
    )


def _merged(sorted_lists: Iterable[list[float]]) -> list[float]:
    # sorted() finds the runs already in order: much faster than heapq.merge here.
    return sorted(chain.from_iterable(sorted_lists))


def _days(scope: Scope, cube: list[CubeRow]) -> list[Day]:
    if not cube:
        return []
    per_day: dict[int, Counts] = defaultdict(Counts)
    for row in cube:
        per_day[row.day].add(row)
    count = int((scope.period.end - scope.period.start - 1e-9) // DAY) + 1
    return [
        Day(
            start=scope.period.start + index * DAY,
            promoted=per_day[index].promoted,
            rolled_back=per_day[index].rolled_back,
            failed=per_day[index].failed,
            unfinished=per_day[index].unfinished,
        )
        for index in range(count)
    ]


def _weeks(scope: Scope, production: list[CubeRow]) -> list[tuple[float, int]]:
    """Production promotions per 7-day block from the period's start (the last may be short)."""
    if not production:
        return []
    weeks = int((scope.period.end - scope.period.start - 1e-9) // WEEK) + 1
    totals = [0] * weeks
    for row in production:
        if row.outcome == "promoted":
            totals[row.day // 7] += row.count
    return [(scope.period.start + index * WEEK, total) for index, total in enumerate(totals)]
