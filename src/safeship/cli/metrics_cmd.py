"""`safeship metrics serve`: the deployment metrics on /metrics, read from the history store."""

from __future__ import annotations

import contextlib
import threading

import click
from prometheus_client import CollectorRegistry

from safeship.cli import params
from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.loopback import is_loopback
from safeship.metrics import (
    DeploymentMetrics,
    initialize_metrics,
    server_address,
    shutdown_metrics,
)
from safeship.metrics.push import push_or_warn
from safeship.redact import redact_url
from safeship.store import open_store


@click.group()
def metrics() -> None:
    """Expose safeship's deployment metrics to Prometheus."""


@metrics.command()
@click.option("--address", default=None, help="Bind address [default: config, 127.0.0.1].")
@click.option("--port", type=params.PORT, default=None, help="Port [default: config, 8001].")
@click.option(
    "--allow-remote", is_flag=True, help="Let --address be beyond loopback (e.g. 0.0.0.0)."
)
@pass_context
def serve(ctx: Context, address: str | None, port: int | None, allow_remote: bool) -> int:
    """Serve /metrics until interrupted (deployment totals are cumulative, from the store).

    Listens on loopback unless --address names another interface *and* --allow-remote
    (or metrics.allow_remote in the config) says that is meant.
    """
    cfg = ctx.load()
    if address and not is_loopback(address) and not (allow_remote or cfg.metrics.allow_remote):
        raise click.UsageError(
            f"--address {address} is not loopback: add --allow-remote to serve the deployment "
            "metrics beyond this machine"
        )
    store = open_store(cfg.store.url)
    try:
        initialize_metrics(
            store,
            service=cfg.service,
            address=address or cfg.metrics.address,
            port=cfg.metrics.port if port is None else port,
        )
        bound = server_address()
        if bound is None:
            where = f"{address or cfg.metrics.address}:{cfg.metrics.port if port is None else port}"
            click.echo(f"error: cannot serve metrics on {where} (address in use?)", err=True)
            return ExitCode.UNAVAILABLE
        click.echo(f"serving http://{bound[0]}:{bound[1]}/metrics (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        shutdown_metrics()
        store.close()
    return ExitCode.OK


@metrics.command()
@click.option("--env", "environment", required=True, help="The environment whose metrics to push.")
@click.option("--strict", is_flag=True, help="Exit 3 when the push fails or no URL is set.")
@pass_context
def push(ctx: Context, environment: str, strict: bool) -> int:
    """Push the deployment metrics of one environment to the Pushgateway.

    Grouping key: job, service, environment (never the deployment id), so series stay
    continuous and increase() works across CI runs. The URL comes from --pushgateway,
    PUSHGATEWAY_URL or pushgateway.url. A failed push warns and exits 0 unless --strict.
    """
    cfg = ctx.load()
    cfg.for_environment(environment)  # an unknown environment is a usage error
    if not cfg.pushgateway.url:
        click.echo("warning: no Pushgateway URL (--pushgateway, PUSHGATEWAY_URL, config)", err=True)
        return ExitCode.UNAVAILABLE if strict else ExitCode.OK
    store = open_store(cfg.store.url)
    try:
        deployment_metrics = DeploymentMetrics(CollectorRegistry(), store, service=cfg.service)
        warning = push_or_warn(cfg.pushgateway, deployment_metrics, environment)
    finally:
        store.close()
    if warning:
        click.echo(f"warning: {warning}", err=True)
        return ExitCode.UNAVAILABLE if strict else ExitCode.OK
    click.echo(
        f"pushed {cfg.service}/{environment} to {redact_url(cfg.pushgateway.url)} "
        f"(job {cfg.pushgateway.job})"
    )
    return ExitCode.OK
