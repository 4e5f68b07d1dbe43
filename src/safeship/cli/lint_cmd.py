"""`safeship rules lint`: what `promtool check rules` lets through, with file and line."""

from __future__ import annotations

import click

from safeship.cli import params
from safeship.cli.context import Context, prometheus_settings
from safeship.cli.exit_codes import ExitCode
from safeship.cli.output import emit_json
from safeship.errors import SafeshipError
from safeship.prometheus.client import PrometheusClient
from safeship.redact import redact_url
from safeship.rules.lint import (
    DEFAULT_SCRAPE_INTERVAL,
    Rule,
    RulesFileError,
    lint_rules,
    load_rules,
    metric_types,
)


@click.command("lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--prometheus-url",
    default=None,
    metavar="URL",
    help="Ask this Prometheus' metadata API which metrics are gauges "
    "[default: the root --prometheus-url; else metric naming conventions].",
)
@click.option(
    "--scrape-interval",
    type=params.POSITIVE,
    default=DEFAULT_SCRAPE_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="Ranges under twice this are reported.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def lint(
    click_ctx: click.Context,
    files: tuple[str, ...],
    prometheus_url: str | None,
    scrape_interval: float,
    as_json: bool,
) -> None:
    """Lint alerting rule FILEs beyond `promtool check rules`.

    Reports template labels the expression drops, rate() of gauges, ranges under two
    scrape intervals, alerts without `for`, expressions without a comparison, missing
    severity/summary, duplicate alert names and per-second rates compared with counts
    per hour. Exit 0 when clean, 1 when there are findings, 2 when a file cannot be
    read or is not a valid rule file.
    """
    rules: list[Rule] = []
    for file in files:
        try:
            rules.extend(load_rules(file))
        except RulesFileError as exc:
            click.echo(f"error: {exc}", err=True)
            click_ctx.exit(ExitCode.USAGE)
    root = click_ctx.find_object(Context)
    url = prometheus_url or (root.prometheus_url if root is not None else None)
    types = _metric_types(url) if url else None
    findings = lint_rules(rules, scrape_interval=scrape_interval, types=types)
    if as_json:
        emit_json(
            {
                "files": list(files),
                "rules": len(rules),
                "metadata": types is not None,
                "findings": [f.to_dict() for f in findings],
            }
        )
    else:
        for finding in findings:
            click.echo(finding.render())
        summary = f"{len(rules)} rules in {len(files)} file(s)"
        if findings:
            click.echo(f"{len(findings)} finding(s) in {summary}")
        else:
            click.echo(f"ok: no findings in {summary}")
    click_ctx.exit(ExitCode.FAILED if findings else ExitCode.OK)


def _metric_types(url: str) -> dict[str, str] | None:
    """Metric types from Prometheus' metadata, or None (with a warning) when it cannot say."""
    try:
        with PrometheusClient(prometheus_settings(url), workflow="lint") as client:
            return metric_types(client.metadata())
    except SafeshipError as exc:
        click.echo(
            f"warning: no metric metadata from {redact_url(url)} ({exc}); "
            "judging gauges by metric names",
            err=True,
        )
        return None
