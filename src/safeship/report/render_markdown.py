"""The report as GitHub-flavoured markdown (e.g. for `$GITHUB_STEP_SUMMARY`)."""

from __future__ import annotations

from safeship.report.build import Report
from safeship.report.tables import Table, all_tables, definitions, summary


def render_markdown(report: Report) -> str:
    lines = ["# Deployment report", "", *(f"{line}  " for line in summary(report)), ""]
    for table in all_tables(report):
        lines += [f"## {table.title}", "", *_table(table), ""]
    lines += ["## Definitions", "", *(f"- {line}" for line in definitions(report)), ""]
    return "\n".join(lines)


def _table(table: Table) -> list[str]:
    if not table.rows:
        return ["No data."]
    return [
        _line(table.header),
        _line(tuple("---" for _ in table.header)),
        *(_line(row) for row in table.rows),
    ]


def _line(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
