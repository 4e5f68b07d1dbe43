"""`safeship alertmanager generate [--check] | test`: Alertmanager routing as code."""

from __future__ import annotations

from pathlib import Path

import click

from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.config import DEFAULT_CONFIG_PATH, AlertingSettings, PushgatewaySettings
from safeship.errors import ConfigError
from safeship.files import exists
from safeship.generated import write_or_check
from safeship.rules.alertmanager import (
    CONFIG_PATH,
    MANIFEST_PATH,
    ROUTES_PATH,
    AmtoolMissingError,
    check_config,
    find_amtool,
    generated_files,
    load_routing_cases,
    verify_route,
)


@click.group()
def alertmanager() -> None:
    """Alertmanager routing by severity as code: generate, and test with amtool."""


def _settings(ctx: Context) -> tuple[AlertingSettings, str, bool]:
    """The config's `alerting`, Pushgateway job and whether it uses Kubernetes; the built-in
    defaults (Operator manifest included) when there is no config."""
    if ctx.config_path is None and not Path(DEFAULT_CONFIG_PATH).exists():
        click.echo(f"no {DEFAULT_CONFIG_PATH}: using the built-in Alertmanager defaults", err=True)
        return AlertingSettings(), PushgatewaySettings().job, True
    config = ctx.load()
    return config.alerting, config.pushgateway.job, config.uses_kubernetes


@alertmanager.command()
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is stale.")
@click.option(
    "--output",
    default=CONFIG_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Alertmanager config file.",
)
@click.option(
    "--manifest",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"Prometheus Operator AlertmanagerConfig manifest [default: {MANIFEST_PATH} when a "
    "router is Kubernetes, or without a config; else none].",
)
@click.option(
    "--routes",
    default=ROUTES_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Routing cases file: every generated alert and the receiver it must reach.",
)
@pass_context
def generate(ctx: Context, check: bool, output: str, manifest: str | None, routes: str) -> int:
    """Write the Alertmanager config (and its Operator manifest) from safeship.yaml, and the
    routing cases `alertmanager test` checks it with.

    Routes critical -> pager, warning -> chat, info -> ticket, anything else -> chat.
    """
    alerting, job, kubernetes = _settings(ctx)
    files = generated_files(
        alerting,
        job,
        config_path=output,
        manifest_path=manifest or (MANIFEST_PATH if kubernetes else None),
        routes_path=routes,
    )
    ok = write_or_check(
        files, check=check, command="safeship alertmanager generate", what="Alertmanager files"
    )
    return ExitCode.OK if ok else ExitCode.FAILED


@alertmanager.command("test")
@click.option(
    "--file",
    "config_file",
    default=CONFIG_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Alertmanager config to check.",
)
@click.option(
    "--cases",
    default=ROUTES_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Routing cases: a YAML list of {labels: {...}, receiver: NAME}.",
)
def test_cmd(config_file: str, cases: str) -> int:
    """Check the config with amtool and route every case through it.

    Needs amtool (Debian package `prometheus-alertmanager`); exit 1 if anything fails.
    """
    try:
        amtool = find_amtool()
    except AmtoolMissingError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.FAILED
    if not exists(Path(config_file)):
        raise ConfigError(
            f"{config_file}: Alertmanager config not found (`safeship alertmanager generate` "
            "writes it and its routing cases from safeship.yaml)"
        )
    routing_cases = load_routing_cases(cases)
    checked = check_config(config_file, amtool)
    if not checked.passed:
        click.echo(f"FAIL check-config {config_file}\n{_indent(checked.output)}")
        return ExitCode.FAILED
    click.echo(f"ok   check-config {config_file}")
    failures = 0
    for case in routing_cases:
        result = verify_route(case, config_file, amtool)
        if result.passed:
            click.echo(f"ok   {case.describe()}")
        else:
            failures += 1
            click.echo(f"FAIL {case.describe()}\n{_indent(result.output)}")
    total = len(routing_cases)
    click.echo(f"{total - failures}/{total} routing cases passed")
    return ExitCode.FAILED if failures else ExitCode.OK


def _indent(text: str) -> str:
    return "\n".join(f"     {line}" for line in text.splitlines() if line.strip())
