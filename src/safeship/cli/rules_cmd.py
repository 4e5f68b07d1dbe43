"""`safeship rules`: generate, test and lint the alerting rules."""

from __future__ import annotations

import os
from pathlib import Path

import click

from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.cli.lint_cmd import lint
from safeship.config import DEFAULT_CONFIG_PATH, AlertingSettings, PushgatewaySettings
from safeship.files import exists
from safeship.generated import write_or_check
from safeship.rules import promtool
from safeship.rules.generate import RULES_FILE, generated_files

GENERATE_HINT = (
    "`safeship rules generate` writes the rules and their unit tests from safeship.yaml "
    "(`safeship init` a whole project)"
)


@click.group()
def rules() -> None:
    """Alerting rules as code: generate, unit-test with promtool, lint."""


def _settings(ctx: Context) -> tuple[AlertingSettings, str, bool]:
    """The config's alerting settings, Pushgateway job and whether it uses Kubernetes;
    built-in defaults (Kubernetes manifests included) when no config file exists.

    An explicitly named config (--config / SAFESHIP_CONFIG) must exist.
    """
    explicit = ctx.config_path or os.environ.get("SAFESHIP_CONFIG")
    if not explicit and not Path(DEFAULT_CONFIG_PATH).exists():
        return AlertingSettings(), PushgatewaySettings().job, True
    config = ctx.load()
    return config.alerting, config.pushgateway.job, config.uses_kubernetes


@rules.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a generated file is stale.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Repository root the files are written under.",
)
@pass_context
def generate(ctx: Context, check: bool, root: Path) -> int:
    """Write .prometheus/alerts.yml from the config (and deploy/kubernetes/prometheusrule.yaml
    when a router is Kubernetes, or without a config)."""
    settings, job, kubernetes = _settings(ctx)
    files = generated_files(settings, root, job, kubernetes=kubernetes)
    ok = write_or_check(files, check=check, command="safeship rules generate", what="rule files")
    return ExitCode.OK if ok else ExitCode.FAILED


@rules.command("test")
@click.option(
    "--rules-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RULES_FILE,
    show_default=True,
    help="Rules file to lint with `promtool check rules --lint=all`.",
)
@click.argument("tests", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def test_cmd(rules_file: Path, tests: tuple[Path, ...]) -> int:
    """Lint the rules and run their promtool unit tests (default: .prometheus/tests/*.yml)."""
    if not exists(rules_file):
        click.echo(f"{rules_file}: not found: {GENERATE_HINT}", err=True)
        return ExitCode.FAILED
    files = list(tests) or promtool.find_tests()
    if not files:
        click.echo(f"no rule tests in {promtool.TESTS_GLOB}: {GENERATE_HINT}", err=True)
        return ExitCode.FAILED
    checked = promtool.check_rules([rules_file])
    click.echo(checked.output)
    if not checked.ok:
        click.echo(f"promtool check rules failed for {rules_file}", err=True)
        return ExitCode.FAILED
    tested = promtool.run_tests(files)
    click.echo(tested.output)
    if not tested.ok:
        click.echo("promtool test rules failed", err=True)
        return ExitCode.FAILED
    return ExitCode.OK


rules.add_command(lint)
