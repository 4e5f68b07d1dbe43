"""The report as terminal tables (rich); results and tiers are coloured on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from safeship.report.build import Report
from safeship.report.tables import Table, all_tables, definitions, summary

_STYLES = {
    "pass": "green",
    "fail": "bold red",
    "no data": "yellow",
    "elite": "green",
    "high": "cyan",
    "medium": "yellow",
    "low": "red",
}


def print_text(report: Report, console: Console) -> None:
    for line in summary(report):
        console.print(line, highlight=False)
    for table in all_tables(report):
        console.print(_rich(table))
    for line in definitions(report):
        console.print(Text(f"* {line}", style="dim"))


def _rich(table: Table) -> RichTable | Text:
    if not table.rows:
        return Text(f"{table.title}: no data")
    rich = RichTable(title=table.title, title_justify="left", show_lines=False)
    for name in table.header:
        rich.add_column(name, overflow="fold")
    for row in table.rows:
        rich.add_row(*(Text(cell, style=_STYLES.get(cell, "")) for cell in row))
    return rich
