"""`safeship check` and `safeship check prometheus`: can a rollout be judged here?"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from safeship.ci.github import set_output
from safeship.cli.context import Context, pass_context, prometheus_settings, with_prometheus_url
from safeship.cli.exit_codes import ExitCode
from safeship.cli.output import emit_json
from safeship.config import DEFAULT_CONFIG_PATH, Config
from safeship.prometheus.check import PrometheusReport, Status, check_prometheus
from safeship.rollout.preflight import check_environments

_MARKS = {Status.OK: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL"}


F = TypeVar("F", bound=Callable[..., Any])


def check_options(f: F) -> F:
    """The options `check` and `check prometheus` share."""
    f = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")(f)
    f = click.option(
        "--strict", is_flag=True, help="Exit 3 when Prometheus is missing or unreachable."
    )(f)
    return click.option(
        "--url",
        envvar="PROMETHEUS_URL",
        default=None,
        help="Prometheus URL [env PROMETHEUS_URL; default: prometheus.url of the config].",
    )(f)


@click.group(invoke_without_command=True)
@check_options
@click.pass_context
def check(click_ctx: click.Context, url: str | None, strict: bool, as_json: bool) -> int | None:
    """Run every check: the config, Prometheus and its queries, rule files, and per
    environment what would break a rollout: a router whose canary slot has traffic,
    hook and smoke-test commands that are missing or not executable, a scrape
    `match` that selects no series at the slots' /metrics.

    Works without a config file too, checking what it can. Exit 0 when nothing
    failed (an unreachable Prometheus or router only warns; --strict makes an
    unreachable Prometheus exit 3), 1 when a check failed, 2 when the config is invalid.
    """
    if click_ctx.invoked_subcommand is not None:
        return None
    return _run(click_ctx.ensure_object(Context), url, strict, as_json, rollout=True)


@check.command("prometheus")
@check_options
@pass_context
def prometheus(ctx: Context, url: str | None, strict: bool, as_json: bool) -> int:
    """Prometheus reachable, rule files valid, every analysis query returning data.

    Inside GitHub Actions it writes prometheus_reachable=true|false to $GITHUB_OUTPUT.
    """
    return _run(ctx, url, strict, as_json, rollout=False)


def _run(ctx: Context, url: str | None, strict: bool, as_json: bool, *, rollout: bool) -> int:
    url = url or ctx.prometheus_url
    config = _config_if_any(ctx)
    if config is not None and url:
        config = with_prometheus_url(config, url)
    settings = config.prometheus if config is not None else prometheus_settings(url)
    report = check_prometheus(settings, config)
    if rollout and config is not None:
        report.findings.extend(check_environments(config))
    set_output("prometheus_reachable", "true" if report.reachable else "false")
    if as_json:
        emit_json({"service": config.service if config else None, **report.to_dict()})
    else:
        _print(report, config, ctx.config_path or DEFAULT_CONFIG_PATH)
    if report.failed:
        return ExitCode.FAILED
    if strict and not report.reachable:
        return ExitCode.UNAVAILABLE
    return ExitCode.OK


def _config_if_any(ctx: Context) -> Config | None:
    """The config when there is one; a missing default file is fine, an invalid one is not."""
    if ctx.config_path is None and not Path(DEFAULT_CONFIG_PATH).exists():
        return None
    return ctx.load()


def _print(report: PrometheusReport, config: Config | None, path: str) -> None:
    shown = f"{path}, service {config.service}" if config else "none (checking what can be)"
    click.echo(f"config: {shown}")
    click.echo(f"prometheus: {report.url or 'not configured'}")
    click.echo(f"prometheus_reachable={'true' if report.reachable else 'false'}")
    for finding in report.findings:
        click.echo(f"  {_MARKS[finding.status]}  {finding.subject}: {finding.message}")
        query = finding.details.get("query")
        if query and finding.status is not Status.OK:
            click.echo(f"        query: {query}")
    failed = sum(f.status is Status.FAIL for f in report.findings)
    warned = sum(f.status is Status.WARN for f in report.findings)
    click.echo(f"{failed} failed, {warned} warning(s)")
