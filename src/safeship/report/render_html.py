"""The report as one self-contained HTML page: inline CSS and inline SVG, no script, no
network, so it can be archived as a CI artifact and opened anywhere."""

from __future__ import annotations

from html import escape

from safeship.report import format as fmt
from safeship.report.build import Report
from safeship.report.queries import LEAD_TIME_BOUNDS, CanaryTrace
from safeship.report.svg import Line, Series, bar_chart, line_chart
from safeship.report.tables import Table, all_tables, definitions, summary

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
  color: #1d2430; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d5dae1; padding: .3rem .6rem; text-align: left;
  vertical-align: top; }
th { background: #f2f4f7; }
td.pass, td.elite { color: #17803d; font-weight: 600; }
td.fail, td.low { color: #b42318; font-weight: 600; }
td.no-data, td.medium { color: #a15c07; }
td.high { color: #0b6bcb; font-weight: 600; }
figure { margin: 1rem 0 2rem; } figcaption { font-weight: 600; margin-bottom: .3rem; }
svg .grid { stroke: #e6e9ee; } svg .tick, svg .legend { font-size: 11px; fill: #4b5565; }
.empty { color: #4b5565; font-style: italic; }
"""
_PROMOTED, _ROLLED_BACK, _FAILED, _UNFINISHED = "#2e9e5b", "#d64545", "#e8a33d", "#9aa4b2"


def render_html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Deployment report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Deployment report</h1>",
        *(f"<p>{escape(line)}</p>" for line in summary(report)),
    ]
    for table in all_tables(report):
        parts += [f"<h2>{escape(table.title)}</h2>", _table(table)]
    parts += ["<h2>Plots</h2>", *_plots(report)]
    parts += [
        "<h2>Definitions</h2>",
        "<ul>",
        *(f"<li>{escape(line)}</li>" for line in definitions(report)),
        "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _table(table: Table) -> str:
    if not table.rows:
        return '<p class="empty">No data.</p>'
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{escape(cell.replace(" ", "-"))}">{escape(cell)}</td>' for cell in row
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _figure(name: str, caption: str, svg: str | None) -> str:
    content = svg if svg is not None else '<p class="empty">No data in this period.</p>'
    return (
        f'<figure class="plot" data-plot="{name}"><figcaption>{escape(caption)}</figcaption>'
        f"{content}</figure>"
    )


def _plots(report: Report) -> list[str]:
    days = report.days
    outcomes = None
    if any(d.promoted + d.rolled_back + d.failed + d.unfinished for d in days):
        outcomes = bar_chart(
            [fmt.month_day(d.start) for d in days],
            [
                Series("promoted", _PROMOTED, [d.promoted for d in days]),
                Series("rolled back / aborted", _ROLLED_BACK, [d.rolled_back for d in days]),
                Series("failed", _FAILED, [d.failed for d in days]),
                Series("unfinished", _UNFINISHED, [d.unfinished for d in days]),
            ],
            "deployments per day by outcome",
        )
    weekly = None
    if any(count for _, count in report.weekly_promotions):
        weekly = bar_chart(
            [fmt.month_day(start) for start, _ in report.weekly_promotions],
            [Series("promotions", _PROMOTED, [c for _, c in report.weekly_promotions])],
            "production promotions per week",
        )
    histogram = None
    if any(report.lead_time_histogram):
        labels = [f"≤{fmt.short_duration(b)}" for b in LEAD_TIME_BOUNDS]
        labels.append(f">{fmt.short_duration(LEAD_TIME_BOUNDS[-1])}")
        histogram = bar_chart(
            labels,
            [Series("promotions", "#3d6fd6", report.lead_time_histogram)],
            "lead time distribution",
        )
    production = report.scope.production
    figures = [
        _figure("outcomes", "Deployments and outcomes per day (by start)", outcomes),
        _figure(
            "weekly-frequency",
            f"Promotions to {production} per week (from the period's start; the last "
            "week may be partial)",
            weekly,
        ),
        _figure("lead-time", f"Lead time for changes ({production} promotions)", histogram),
    ]
    if not report.traces:
        figures.append(_figure("canary", "Canary weight and error rate", None))
    for trace in report.traces:
        caption = (
            f"Canary weight and error rate: {trace.service} {trace.version} -> "
            f"{trace.environment} ({trace.outcome or 'unfinished'}"
            + (f", {trace.reason}" if trace.reason else "")
            + f"), {trace.deployment_id}"
        )
        figures.append(_figure("canary", caption, _trace(trace)))
    return figures


def _trace(trace: CanaryTrace) -> str | None:
    if not trace.weights and not trace.points:
        return None
    t0 = trace.started_at
    times = [at for at, _ in trace.weights] + [p.at for p in trace.points]
    canary = [
        (p.at - t0, p.canary_error_rate) for p in trace.points if p.canary_error_rate is not None
    ]
    baseline = [
        (p.at - t0, p.baseline_error_rate)
        for p in trace.points
        if p.baseline_error_rate is not None
    ]
    return line_chart(
        Line("canary weight", "#3d6fd6", [(at - t0, w) for at, w in trace.weights], step=True),
        [
            Line("canary error rate", _ROLLED_BACK, canary),
            Line("baseline error rate", "#4b5565", baseline),
        ],
        max(times) - t0,
        max([rate for _, rate in canary + baseline], default=0.0),
        "canary weight and error rate over time",
    )
