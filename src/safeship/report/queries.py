"""The report's SQL: the figures are aggregated by the database, over the period only.

Each query filters deployments on `started_at` (indexed by revision 0005): one grouped
pass gives every count (per service, environment, day and outcome), a correlated
subquery on the (service, environment, started_at) index finds what restored each
failure, and only a few traced rollouts' decisions are read whole. The one per-row read
is the promotions' lead times, for exact percentiles (see `lead_times`). The queries
run unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    select,
)
from sqlalchemy.engine import Connection

from safeship.report.period import DAY, Period
from safeship.rollout.machine import Reason
from safeship.store.sql import counters, decisions, deployments, rollout_states, smoke_tests

#: Outcomes of a deployment that has ended (`paused` and no outcome yet are unfinished).
FINISHED_OUTCOMES = ("promoted", "rolled_back", "aborted", "failed")
#: Reasons that come from the canary analysis' statistical checks, not from people,
#: hooks, smoke tests or missing infrastructure.
ANALYSIS_REASONS: tuple[str, ...] = (Reason.HIGH_ERROR_RATE.value, Reason.HIGH_LATENCY.value)
#: Why a promotion has no commit time when its row does not say (see `CubeRow`).
NOT_RECORDED = "not_recorded"
#: Upper bounds (seconds) of the lead-time histogram's bars; the last bar is open-ended.
LEAD_TIME_BOUNDS: tuple[float, ...] = (
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    DAY,
    2 * DAY,
    7 * DAY,
    30 * DAY,
)


@dataclass(frozen=True)
class Scope:
    """What the report covers; `production` names the environment the DORA keys measure."""

    period: Period
    service: str | None = None
    environment: str | None = None
    production: str = "production"
    left_out: tuple[str, ...] = ()  # services not counted (the demo's, unless asked for)


@dataclass(frozen=True)
class CubeRow:
    """Deployments of one service and environment started on one day, with one outcome."""

    service: str
    environment: str
    day: int  # whole days since the period's start
    outcome: str | None
    count: int
    # Promoted without a commit time: why (a `CommitTimeMissing` value, or NOT_RECORDED
    # for rows from before revision 0008 and from outside `safeship rollout`); else None.
    without_commit_time: str | None
    canaries: int  # the canary took traffic (max_weight > 0)
    canaries_by_analysis: int  # ... and the reason is one of ANALYSIS_REASONS


@dataclass(frozen=True)
class RestoreEpisode:
    """A run of failed deployments of one service and environment, and when it ended.

    `failed_at` is the start of the run's first deployment; `restored_at` the end of
    the first promotion after it in the period, or None if there was none.
    """

    service: str
    environment: str
    failed_at: float
    restored_at: float | None


@dataclass(frozen=True)
class TracePoint:
    """One analysis look of a traced rollout: canary weight and both error rates."""

    at: float
    weight: int
    canary_error_rate: float | None
    baseline_error_rate: float | None


@dataclass(frozen=True)
class CanaryTrace:
    """One rollout's canary weight (from its states) and error rates (from its decisions)."""

    deployment_id: str
    service: str
    environment: str
    version: str
    outcome: str | None
    reason: str | None
    started_at: float
    weights: list[tuple[float, int]]
    points: list[TracePoint]


def _scoped(scope: Scope) -> list[ColumnElement[bool]]:
    d = deployments.c
    where = [d.started_at >= scope.period.start, d.started_at < scope.period.end]
    if scope.service is not None:
        where.append(d.service == scope.service)
    if scope.left_out:
        where.append(d.service.notin_(scope.left_out))
    if scope.environment is not None:
        where.append(d.environment == scope.environment)
    return where


def left_out_count(conn: Connection, scope: Scope) -> int:
    """How many deployments of the period the scope's `left_out` services hold."""
    if not scope.left_out:
        return 0
    d = deployments.c
    where = [d.started_at >= scope.period.start, d.started_at < scope.period.end]
    where.append(d.service.in_(scope.left_out))
    if scope.environment is not None:
        where.append(d.environment == scope.environment)
    return int(conn.execute(select(func.count()).where(*where)).scalar_one())


def _whole_days(seconds: ColumnElement[float], dialect: str) -> ColumnElement[int]:
    """floor(seconds / 1 day) for seconds >= 0; SQLite may be built without FLOOR()."""
    if dialect == "sqlite":
        return cast(seconds / DAY, Integer)  # truncates, which is floor for seconds >= 0
    return cast(func.floor(seconds / DAY), Integer)


def deployment_cube(conn: Connection, scope: Scope) -> list[CubeRow]:
    """Every count the report needs, from one grouped pass over the period's deployments.

    Promotions without a commit time are grouped by why, so the report can say what
    lead time is missing and what would provide it.
    """
    d = deployments.c
    canary = d.max_weight > 0
    rows = select(
        d.service,
        d.environment,
        _whole_days(d.started_at - scope.period.start, conn.dialect.name).label("day"),
        d.outcome,
        case(
            (
                and_(d.outcome == "promoted", d.commit_time.is_(None)),
                func.coalesce(d.commit_time_missing, NOT_RECORDED),
            ),
            else_=None,
        ).label("without_commit_time"),
        case((canary, 1), else_=0).label("canary"),
        case((and_(canary, d.reason.in_(ANALYSIS_REASONS)), 1), else_=0).label("by_analysis"),
    ).where(*_scoped(scope))
    # Grouped outside: PostgreSQL does not match a GROUP BY expression whose bound
    # parameters SQLAlchemy renders under new names.
    sub = rows.subquery()
    keys = (sub.c.service, sub.c.environment, sub.c.day, sub.c.outcome, sub.c.without_commit_time)
    query = select(
        *keys,
        func.count(),
        func.sum(sub.c.canary),
        func.sum(sub.c.by_analysis),
    ).group_by(*keys)
    return [
        CubeRow(
            service=row[0],
            environment=row[1],
            day=int(row[2]),
            outcome=row[3],
            without_commit_time=row[4],
            count=int(row[5]),
            canaries=int(row[6]),
            canaries_by_analysis=int(row[7]),
        )
        for row in conn.execute(query)
    ]


def lead_times(conn: Connection, scope: Scope) -> dict[tuple[str, str], list[float]]:
    """Lead times (`finished_at - commit_time`) of the period's promotions, sorted, per
    (environment, service); promotions without a commit time are not among them.

    The one place rows leave the database, one number per promotion: percentiles need
    the order statistics, SQLite has no percentile aggregate, and ranking with window
    functions measured 5x slower than sorting these floats here.
    """
    d = deployments.c
    query = select(d.environment, d.service, d.finished_at - d.commit_time).where(
        *_scoped(scope),
        d.outcome == "promoted",
        d.commit_time.is_not(None),
        d.finished_at.is_not(None),
    )
    result: dict[tuple[str, str], list[float]] = {}
    for environment, service, lead_time in _plain_rows(conn, query):
        result.setdefault((environment, service), []).append(lead_time)
    for values in result.values():
        values.sort()
    return result


def _plain_rows(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows as the driver's plain tuples, skipping SQLAlchemy's Row objects, which
    doubled the time to read a million-deployment history's lead times."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def quantile(ordered: Sequence[float], percent: int) -> float:
    """Linear interpolation between the closest ranks (as numpy's default and
    PostgreSQL's percentile_cont): the median of 10, 20, 30, 40 is 25."""
    position = (len(ordered) - 1) * percent / 100
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def histogram(values: Sequence[float]) -> list[int]:
    """Counts per lead-time bar of LEAD_TIME_BOUNDS (each bar up to and including its
    bound), plus the open-ended last bar."""
    counts = [0] * (len(LEAD_TIME_BOUNDS) + 1)
    for value in values:
        counts[bisect_left(LEAD_TIME_BOUNDS, value)] += 1
    return counts


def restore_episodes(conn: Connection, scope: Scope) -> list[RestoreEpisode]:
    """Episodes of failed deployments per service and environment, and when each ended.

    A failed deployment is a finished one that was not promoted; it is restored by the
    next promotion (by start time, within the period) of the same service and
    environment. Failures restored by the same promotion are one episode (one outage,
    not several), measured from the first one's start to that promotion's end; those
    with no promotion after them are one unrestored episode per service and environment.
    """
    d = deployments.c
    later = deployments.alias("later")
    restored_at = (
        select(later.c.finished_at)
        .where(
            later.c.service == d.service,
            later.c.environment == d.environment,
            later.c.started_at > d.started_at,
            later.c.started_at < scope.period.end,
            later.c.outcome == "promoted",
        )
        .order_by(later.c.started_at)
        .limit(1)
        .scalar_subquery()
    )
    failures = (
        select(d.service, d.environment, d.started_at, restored_at.label("restored_at"))
        .where(*_scoped(scope), d.outcome.in_(FINISHED_OUTCOMES), d.outcome != "promoted")
        .subquery()
    )
    # The restoring promotion's end identifies it: failures sharing it are one episode.
    keys = (failures.c.service, failures.c.environment, failures.c.restored_at)
    query = select(
        failures.c.service,
        failures.c.environment,
        func.min(failures.c.started_at),
        failures.c.restored_at,
    ).group_by(*keys)
    return [RestoreEpisode(*row) for row in conn.execute(query)]


def smoke_test_totals(conn: Connection, scope: Scope) -> tuple[int, int]:
    """(passed, run) smoke tests run during the period."""
    s = smoke_tests.c
    where = [s.at >= scope.period.start, s.at < scope.period.end]
    if scope.service is not None:
        where.append(s.service == scope.service)
    if scope.left_out:
        where.append(s.service.notin_(scope.left_out))
    if scope.environment is not None:
        where.append(s.environment == scope.environment)
    passed, run = conn.execute(
        select(func.coalesce(func.sum(case((s.passed, 1), else_=0)), 0), func.count()).where(*where)
    ).one()
    return int(passed), int(run)


def counter_results(conn: Connection, name: str, scope: Scope) -> dict[str, float]:
    """All-time totals of counter `name` by its `result` label, e.g. Prometheus queries
    (success | failed | timeout) or Grafana updates (success | failed).

    The counters table keeps running totals without timestamps, so these figures cannot
    be limited to the period (nor to an environment: these counters carry none).
    """
    c = counters.c
    query = select(c.labels, func.sum(c.value)).where(c.name == name).group_by(c.labels)
    if scope.service is not None:
        query = query.where(c.service == scope.service)
    if scope.left_out:
        query = query.where(c.service.notin_(scope.left_out))
    totals: dict[str, float] = {}
    for labels, value in conn.execute(query):
        result = json.loads(labels).get("result")
        if result is not None:
            totals[result] = totals.get(result, 0.0) + float(value)
    return totals


def canary_traces(conn: Connection, scope: Scope, limit: int) -> list[CanaryTrace]:
    """The newest canaries of the period: one rolled back by analysis, then promoted ones.

    A rollback by analysis is the trace worth seeing, so it comes first when there is one.
    """
    d = deployments.c
    newest = (
        select(d.id, d.service, d.environment, d.version, d.outcome, d.reason, d.started_at)
        .where(*_scoped(scope), d.max_weight > 0)
        .order_by(d.started_at.desc())
    )
    picked: list[Sequence[Any]] = list(
        conn.execute(newest.where(d.reason.in_(ANALYSIS_REASONS)).limit(1))
    )
    picked += list(conn.execute(newest.where(d.outcome == "promoted").limit(limit - len(picked))))
    if not picked:
        return []
    ids = [row[0] for row in picked]
    weights: dict[str, list[tuple[float, int]]] = {i: [] for i in ids}
    states = (
        select(rollout_states.c.deployment_id, rollout_states.c.at, rollout_states.c.state)
        .where(rollout_states.c.deployment_id.in_(ids))
        .order_by(rollout_states.c.deployment_id, rollout_states.c.seq)
    )
    for deployment_id, at, state in conn.execute(states):
        weights[deployment_id].append((float(at), int(json.loads(state).get("weight", 0))))
    points: dict[str, list[TracePoint]] = {i: [] for i in ids}
    looks = (
        select(decisions.c.deployment_id, decisions.c.at, decisions.c.weight, decisions.c.inputs)
        .where(decisions.c.deployment_id.in_(ids), decisions.c.step >= 0)
        .order_by(decisions.c.deployment_id, decisions.c.seq)
    )
    for deployment_id, at, weight, inputs in conn.execute(looks):
        samples = json.loads(inputs).get("verdict", {}).get("samples")
        if samples:
            points[deployment_id].append(
                TracePoint(
                    at=float(at),
                    weight=int(weight),
                    canary_error_rate=_rate(samples, "canary"),
                    baseline_error_rate=_rate(samples, "baseline"),
                )
            )
    return [
        CanaryTrace(
            deployment_id=row[0],
            service=row[1],
            environment=row[2],
            version=row[3],
            outcome=row[4],
            reason=row[5],
            started_at=float(row[6]),
            weights=weights[row[0]],
            points=points[row[0]],
        )
        for row in picked
    ]


def _rate(samples: dict[str, Any], version: str) -> float | None:
    requests = samples.get(f"{version}_requests")
    errors = samples.get(f"{version}_errors")
    if not requests or errors is None:
        return None
    return float(errors) / float(requests)
