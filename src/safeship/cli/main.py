"""`safeship` command: the root group, shared options and error-to-exit-code mapping."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from safeship import __version__
from safeship.cli.alertmanager_cmd import alertmanager
from safeship.cli.check_cmd import check
from safeship.cli.config_cmd import config
from safeship.cli.context import Context
from safeship.cli.dashboards_cmd import dashboards
from safeship.cli.dashboards_generate import generate as generate_dashboards
from safeship.cli.demo_cmd import demo
from safeship.cli.exit_codes import ExitCode
from safeship.cli.init_cmd import init
from safeship.cli.logs import configure_logging
from safeship.cli.metrics_cmd import metrics
from safeship.cli.report_cmd import report
from safeship.cli.rollout_cmd import rollout
from safeship.cli.router_cmd import router
from safeship.cli.rules_cmd import rules
from safeship.cli.simulate_cmd import simulate_cmd
from safeship.errors import (
    ConfigError,
    RolloutLockedError,
    RolloutRefusedError,
    SafeshipError,
    TransientError,
)
from safeship.redact import environment_secrets, redact_text, remember_secrets


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    envvar="SAFESHIP_CONFIG",
    default=None,
    metavar="FILE",
    help="Config file [env SAFESHIP_CONFIG; default ./safeship.yaml].",
)
@click.option(
    "--store",
    "store_url",
    envvar="SAFESHIP_STORE_URL",
    default=None,
    metavar="URL",
    help="History store, a SQLAlchemy URL [env SAFESHIP_STORE_URL; default: the config's].",
)
@click.option(
    "--pushgateway",
    "pushgateway_url",
    envvar="PUSHGATEWAY_URL",
    default=None,
    metavar="URL",
    help="Push deployment metrics here after rollouts [env PUSHGATEWAY_URL; default: config].",
)
@click.option(
    "--prometheus-url",
    envvar="PROMETHEUS_URL",
    default=None,
    metavar="URL",
    help="Prometheus to analyse and check with [env PROMETHEUS_URL; default: config].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.version_option(__version__, prog_name="safeship")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    store_url: str | None,
    pushgateway_url: str | None,
    prometheus_url: str | None,
    verbose: bool,
) -> None:
    """Progressive canary deployments, judged from live metrics, rolled back by themselves.

    Exit codes: 0 success/promoted, 1 rolled back or check failed, 2 bad config or
    usage, 3 infrastructure unavailable before anything changed, 4 paused waiting
    for a person, 5 another rollout holds the lock.
    """
    configure_logging(verbose)
    ctx.obj = Context(config_path, store_url, pushgateway_url, prometheus_url)


dashboards.add_command(generate_dashboards)
for command in (
    init,
    config,
    check,
    rollout,
    report,
    simulate_cmd,
    rules,
    alertmanager,
    dashboards,
    metrics,
    router,
    demo,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors become a message on stderr and their exit code."""
    # A path or value from argv may hold bytes that are not UTF-8 (Python keeps them as
    # surrogates): echo them escaped rather than fail to print the message that names them.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    # What a hook inherits and may print: never shown or stored, whatever the config says.
    remember_secrets(environment_secrets(os.environ))
    try:
        result: Any = cli.main(args=argv, prog_name="safeship", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted (Ctrl-C): stopped", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except ConfigError as exc:
        click.echo(f"error: {redact_text(str(exc))}", err=True)
        if len(exc.problems) > 1 or exc.problems[0] != str(exc):
            for problem in exc.problems:
                click.echo(f"  {redact_text(problem)}", err=True)
        return ExitCode.USAGE
    except (TransientError, RolloutRefusedError) as exc:
        click.echo(f"error: {redact_text(str(exc))}", err=True)
        return ExitCode.UNAVAILABLE
    except RolloutLockedError as exc:
        click.echo(f"error: {redact_text(str(exc))}", err=True)
        return ExitCode.LOCKED
    except SafeshipError as exc:
        click.echo(f"error: {redact_text(str(exc))}", err=True)
        return ExitCode.FAILED
    except Exception as exc:  # the last line of defence: never a traceback
        # A bug, not a user's mistake: say so plainly, keep the traceback for -v.
        logging.getLogger("safeship").debug("unexpected error", exc_info=True)
        click.echo(
            f"error: unexpected {type(exc).__name__}: {redact_text(str(exc))} (a bug in "
            "safeship: please report it with the command that caused it; -v shows where)",
            err=True,
        )
        return ExitCode.FAILED
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
