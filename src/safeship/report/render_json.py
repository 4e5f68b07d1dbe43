"""The report as JSON (`schema_version` 1): raw numbers, seconds and ratios, None as null."""

from __future__ import annotations

from typing import Any

from safeship.report.build import BreakdownRow, Counts, DoraKeys, Report
from safeship.report.format import timestamp
from safeship.report.queries import LEAD_TIME_BOUNDS

#: Bumped when a field changes meaning or goes away (adding fields keeps it).
SCHEMA_VERSION = 1


def report_to_dict(report: Report) -> dict[str, Any]:
    scope = report.scope
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": timestamp(report.generated_at),
        "period": {
            "start": timestamp(scope.period.start),
            "end": timestamp(scope.period.end),
            "days": scope.period.days,
        },
        "filters": {
            "service": scope.service,
            "environment": scope.environment,
            "production_environment": scope.production,
            "left_out_services": list(scope.left_out),
        },
        "left_out_deployments": report.left_out,
        "empty": report.empty,
        "deployments": _counts(report.counts),
        "dora": _dora(report.dora),
        "outcomes": [
            {
                "key": outcome.target.key,
                "name": outcome.target.name,
                "target": outcome.target.describe(),
                "value": outcome.value,
                "numerator": outcome.numerator,
                "denominator": outcome.denominator,
                "status": outcome.status.value,
                "counts": outcome.target.counts,
                "note": outcome.note,
            }
            for outcome in report.outcomes
        ],
        "by_service": [_row(row) for row in report.by_service],
        "by_environment": [_row(row) for row in report.by_environment],
        "series": {
            "days": [
                {
                    "start": timestamp(day.start),
                    "promoted": day.promoted,
                    "rolled_back": day.rolled_back,
                    "failed": day.failed,
                    "unfinished": day.unfinished,
                }
                for day in report.days
            ],
            "weekly_production_promotions": [
                {"start": timestamp(start), "promotions": count}
                for start, count in report.weekly_promotions
            ],
            "lead_time_histogram": [
                {"up_to_seconds": bound, "count": count}
                for bound, count in zip(
                    [*LEAD_TIME_BOUNDS, None], report.lead_time_histogram, strict=False
                )
            ],
        },
        "canary_traces": [
            {
                "deployment_id": trace.deployment_id,
                "service": trace.service,
                "environment": trace.environment,
                "version": trace.version,
                "outcome": trace.outcome,
                "reason": trace.reason,
                "weights": [{"at": at, "weight": weight} for at, weight in trace.weights],
                "looks": [
                    {
                        "at": point.at,
                        "weight": point.weight,
                        "canary_error_rate": point.canary_error_rate,
                        "baseline_error_rate": point.baseline_error_rate,
                    }
                    for point in trace.points
                ],
            }
            for trace in report.traces
        ],
    }


def _counts(counts: Counts) -> dict[str, int]:
    return {
        "started": counts.deployments,
        "finished": counts.finished,
        "unfinished": counts.unfinished,
        "promoted": counts.promoted,
        "rolled_back": counts.rolled_back,
        "failed": counts.failed,
    }


def _dora(keys: DoraKeys) -> dict[str, Any]:
    tiers = keys.tiers
    per_day = keys.per_day
    return {
        "environment": keys.environment,
        "deployment_frequency": {
            "promotions": keys.promotions,
            "per_day": per_day,
            "per_week": None if per_day is None else per_day * 7,
            "tier": tiers["deployment_frequency"],
        },
        "lead_time": {
            "promotions_measured": len(keys.lead_times),
            "excluded_without_commit_time": keys.lead_time_excluded,
            "without_commit_time": dict(keys.lead_time_missing),
            "median_seconds": keys.lead_time(50),
            "p90_seconds": keys.lead_time(90),
            "tier": tiers["lead_time"],
        },
        "change_failure_rate": {
            "failed": keys.failed,
            "finished": keys.finished,
            "rate": keys.change_failure_rate,
            "tier": tiers["change_failure_rate"],
        },
        "time_to_restore": {
            "episodes": len(keys.restore_times) + keys.unrestored,
            "restored": len(keys.restore_times),
            "unrestored": keys.unrestored,
            "median_seconds": keys.restore_median,
            "tier": tiers["time_to_restore"],
        },
    }


def _row(row: BreakdownRow) -> dict[str, Any]:
    return {"name": row.name, "deployments": _counts(row.counts), "dora": _dora(row.dora)}
