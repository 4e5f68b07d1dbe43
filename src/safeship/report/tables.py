"""The report's tables as rows of strings, shared by the terminal, markdown and HTML renderers,
so the three always show the same figures with the same definitions."""

from __future__ import annotations

from dataclasses import dataclass

from safeship.report import format as fmt
from safeship.report.build import BreakdownRow, DoraKeys, Report
from safeship.report.queries import NOT_RECORDED
from safeship.rollout.commit_time import CommitTimeMissing


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def summary(report: Report) -> list[str]:
    scope = report.scope
    filters = [f"service {scope.service}"] if scope.service else []
    if scope.environment:
        filters.append(f"environment {scope.environment}")
    lines = [
        f"Period: {scope.period.describe()}, by deployment start"
        + (f"; {', '.join(filters)}" if filters else "")
    ]
    c = report.counts
    if report.empty:
        lines.append("No deployments started in this period.")
    else:
        lines.append(
            f"{c.deployments} deployments: {c.promoted} promoted, {c.rolled_back} rolled back "
            f"or aborted, {c.failed} failed, {c.unfinished} unfinished."
        )
    if report.left_out:
        names = ", ".join(scope.left_out)
        lines.append(
            f"Left out: {report.left_out} demo rollouts (service {names}); "
            f"--service {scope.left_out[0]} reports on them."
        )
    missing = _without_commit_time(report.dora)
    if missing:
        lines.append(missing)
    return lines


def _without_commit_time(keys: DoraKeys) -> str | None:
    """How many promotions lead time leaves out for want of a commit time, and why."""
    if not keys.lead_time_missing:
        return None
    head = (
        f"Lead time: {keys.lead_time_excluded} of {keys.promotions} promotions to "
        f"{keys.environment} had no commit time"
    )
    reasons = sorted(keys.lead_time_missing.items(), key=lambda item: (-item[1], item[0]))
    if len(reasons) == 1:
        return f"{head} ({_why(reasons[0][0])})."
    return f"{head}: " + "; ".join(f"{count} {_why(why)}" for why, count in reasons) + "."


def _why(code: str) -> str:
    if code == NOT_RECORDED:
        return (
            "with no reason recorded, as older rollouts and those not run by `safeship "
            "rollout` record none: --commit-time / SAFESHIP_COMMIT_TIME, or a --commit-sha "
            "in the rollout's checkout, provides it"
        )
    try:
        return CommitTimeMissing(code).explanation
    except ValueError:  # DeploymentRecord takes any string, e.g. through the library
        return f"reason {code!r}"


def dora_table(report: Report) -> Table:
    keys = report.dora
    tiers = keys.tiers
    return Table(
        f"DORA four keys (environment {keys.environment})",
        ("key", "value", "tier", "counted"),
        [
            (
                "Deployment frequency",
                fmt.rate(keys.per_day),
                fmt.tier(tiers["deployment_frequency"]),
                f"{keys.promotions} promotions in {keys.days:g} days",
            ),
            (
                "Lead time for changes",
                _lead_time(keys),
                fmt.tier(tiers["lead_time"]),
                f"{len(keys.lead_times)} promotions, commit to promoted; "
                f"{keys.lead_time_excluded} without commit time excluded",
            ),
            (
                "Change failure rate",
                fmt.percent(keys.change_failure_rate),
                fmt.tier(tiers["change_failure_rate"]),
                f"{keys.failed} of {keys.finished} finished deployments not promoted",
            ),
            (
                "Time to restore",
                _median(keys.restore_median),
                fmt.tier(tiers["time_to_restore"]),
                f"{len(keys.restore_times)} failure episodes restored by a promotion, "
                f"{keys.unrestored} not restored in the period",
            ),
        ],
    )


def outcomes_table(report: Report) -> Table:
    return Table(
        "Outcomes against targets",
        ("outcome", "value", "target", "result", "counted"),
        [
            (
                o.target.name,
                fmt.percent(o.value),
                o.target.describe(),
                o.status.value,
                f"{o.target.counts}: {o.numerator:g} / {o.denominator:g}"
                + (f" ({o.note})" if o.note else ""),
            )
            for o in report.outcomes
        ],
    )


def breakdown_table(title: str, column: str, rows: list[BreakdownRow]) -> Table:
    return Table(
        title,
        (
            column,
            "deployments",
            "success",
            "rollback",
            "promotions",
            "lead time (median)",
            "change failure",
            "restore (median)",
        ),
        [
            (
                row.name,
                str(row.counts.deployments),
                fmt.percent(row.counts.promoted / row.counts.finished)
                if row.counts.finished
                else "no data",
                fmt.percent(row.counts.rolled_back / row.counts.finished)
                if row.counts.finished
                else "no data",
                fmt.rate(row.dora.per_day),
                fmt.duration(row.dora.lead_time(50)),
                fmt.percent(row.dora.change_failure_rate),
                fmt.duration(row.dora.restore_median),
            )
            for row in rows
        ],
    )


def all_tables(report: Report) -> list[Table]:
    production = report.scope.production
    return [
        dora_table(report),
        outcomes_table(report),
        breakdown_table(
            f"By service (DORA columns: environment {production})", "service", report.by_service
        ),
        breakdown_table(
            "By environment (DORA columns: that environment)",
            "environment",
            report.by_environment,
        ),
    ]


def definitions(report: Report) -> list[str]:
    """What each figure counts, printed under the tables."""
    production = report.scope.production
    return [
        "A deployment is in the period when it started in it. Finished = promoted, "
        "rolled back, aborted or failed.",
        f"DORA keys count deployments to {production}: frequency = promotions per day; "
        "lead time = commit time (--commit-time / SAFESHIP_COMMIT_TIME, else the commit "
        "sha's committer time from git in the rollout's checkout) to the end of the "
        "promotion (median, p90); change failure "
        "= finished but not promoted / finished; time to restore = from the start of the "
        "first failed deployment of an episode to the end of the next promotion of that "
        "service and environment (median).",
        "Tiers: DORA 2021 (elite: several deployments a day, lead time and restore under an "
        "hour, change failure at most 15%); values between published ranges get the "
        "better tier.",
        "Canary rollbacks by analysis: reasons high_error_rate and high_latency, among "
        f"finished {production} deployments whose canary took traffic.",
    ]


def _lead_time(keys: DoraKeys) -> str:
    median = keys.lead_time(50)
    if median is None:
        return "no data"
    return f"median {fmt.duration(median)}, p90 {fmt.duration(keys.lead_time(90))}"


def _median(seconds: float | None) -> str:
    return "no data" if seconds is None else f"median {fmt.duration(seconds)}"
