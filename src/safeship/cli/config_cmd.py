"""`safeship config validate | schema | show`."""

from __future__ import annotations

import json

import click

from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.cli.output import SCHEMA_VERSION, emit_json
from safeship.config import json_schema, load_config, redacted
from safeship.errors import ConfigError


@click.group()
def config() -> None:
    """Check, describe and show safeship.yaml."""


@config.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
@pass_context
def validate(ctx: Context, file: str | None, as_json: bool) -> int:
    """Validate FILE (default: --config, $SAFESHIP_CONFIG, ./safeship.yaml).

    Every problem is listed with its line and key path; exit 2 if there is any.
    """
    try:
        cfg = load_config(file or ctx.config_path)
    except ConfigError as exc:
        if as_json:
            emit_json({"valid": False, "problems": exc.problems})
        else:
            click.echo(f"invalid: {exc}", err=True)
            if exc.problems != [str(exc)]:  # a lone problem is already the message
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
        return ExitCode.USAGE
    if as_json:
        emit_json({"valid": True, "service": cfg.service, "environments": list(cfg.environments)})
    else:
        envs = ", ".join(cfg.environments)
        click.echo(f"valid: service {cfg.service}, environments: {envs}")
    return ExitCode.OK


@config.command()
def schema() -> None:
    """Print the JSON Schema of safeship.yaml (for editors' YAML language servers)."""
    click.echo(json.dumps(json_schema(), indent=2))


@config.command()
@click.option("--env", "environment", default=None, help="Show the settings in force here.")
@pass_context
def show(ctx: Context, environment: str | None) -> None:
    """Print the effective configuration with every default filled in, secrets masked."""
    cfg = ctx.load()
    data = redacted(cfg.for_environment(environment) if environment else cfg)
    click.echo(json.dumps({"schema_version": SCHEMA_VERSION, **data}, indent=2))
