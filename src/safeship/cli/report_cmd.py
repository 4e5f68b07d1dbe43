"""`safeship report`: DORA keys and outcome targets over a period, from the history store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console

from safeship.cli.context import Context, pass_context
from safeship.config import DEMO_SERVICE
from safeship.errors import ConfigError
from safeship.report.build import Report, report_from_url
from safeship.report.period import resolve_period
from safeship.report.queries import Scope
from safeship.report.render_html import render_html
from safeship.report.render_json import report_to_dict
from safeship.report.render_markdown import render_markdown
from safeship.report.render_text import print_text

FORMATS = ("table", "markdown", "json", "html")


@click.command()
@click.option(
    "--since", default=None, metavar="DURATION", help="Period up to now, e.g. 30d, 12h, 2w [30d]."
)
@click.option("--from", "date_from", default=None, metavar="DATE", help="Period start (UTC).")
@click.option(
    "--to", "date_to", default=None, metavar="DATE", help="Period end, inclusive day (UTC) [now]."
)
@click.option("--service", default=None, help="Only this service [default: the config's, if any].")
@click.option("--env", "environment", default=None, help="Only this environment.")
@click.option(
    "--production-env",
    default="production",
    show_default=True,
    help="The environment the DORA keys measure.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the report to FILE instead of stdout.",
)
@pass_context
def report(
    ctx: Context,
    since: str | None,
    date_from: str | None,
    date_to: str | None,
    service: str | None,
    environment: str | None,
    production_env: str,
    fmt: str,
    output: Path | None,
) -> None:
    """DORA four keys and the deployment outcome targets, per service and environment.

    Reads the history store (root --store, or the config's). A deployment counts in
    the period it started in; an empty period is reported as such (exit 0).
    """
    url, configured_service = ctx.history()
    now = time.time()
    scope = Scope(
        period=resolve_period(now, since, date_from, date_to),
        service=service or configured_service,
        environment=environment,
        production=production_env,
        left_out=() if service or configured_service else (DEMO_SERVICE,),
    )
    result = report_from_url(url, scope, now)
    if output is None:
        if fmt == "table":
            print_text(result, Console())
        else:
            click.echo(_render(result, fmt))
        return
    try:
        with output.open("w", encoding="utf-8") as file:
            if fmt == "table":
                print_text(result, Console(file=file, width=140, no_color=True))
            else:
                file.write(_render(result, fmt) + "\n")
    except OSError as exc:
        raise ConfigError(
            f"--output {output}: cannot write the report: {exc.strerror or exc} "
            "(does its folder exist, and may you write there?)"
        ) from exc


def _render(result: Report, fmt: str) -> str:
    if fmt == "markdown":
        return render_markdown(result)
    if fmt == "json":
        return json.dumps(report_to_dict(result), indent=2)
    return render_html(result)
