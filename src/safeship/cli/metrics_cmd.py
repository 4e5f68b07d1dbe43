"""`safeship metrics serve`: the deployment metrics on /metrics, read from the history store."""

from __future__ import annotations

import contextlib
import threading

import click
from prometheus_client import CollectorRegistry

from safeship.cli import params
from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.config import DEFAULT_STORE_PATH, DEFAULT_STORE_URL, DEMO_SERVICE, MetricsSettings
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
    found = ctx.load_optional(
        f"the embedded defaults (history store {DEFAULT_STORE_PATH}, every service in it)"
    )
    settings = found.metrics if found else MetricsSettings()
    if address and not is_loopback(address) and not (allow_remote or settings.allow_remote):
        raise click.UsageError(
            f"--address {address} is not loopback: add --allow-remote to serve the deployment "
            "metrics beyond this machine"
        )
    store = open_store(found.store.url if found else ctx.store_url or DEFAULT_STORE_URL)
    try:
        initialize_metrics(
            store,
            service=found.service if found else None,
            address=address or settings.address,
            port=settings.port if port is None else port,
        )
        bound = server_address()
        if bound is None:
            where = f"{address or settings.address}:{settings.port if port is None else port}"
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
@click.option(
    "--service",
    default=None,
    help="The service whose metrics to push [default: the config's; without one, every "
    "service the history store has in --env].",
)
@click.option("--strict", is_flag=True, help="Exit 3 when the push fails or no URL is set.")
@pass_context
def push(ctx: Context, environment: str, service: str | None, strict: bool) -> int:
    """Push the deployment metrics of one environment to the Pushgateway.

    Grouping key: job, service, environment (never the deployment id), so series stay
    continuous and increase() works across CI runs. The URL comes from --pushgateway,
    PUSHGATEWAY_URL or pushgateway.url. A failed push warns and exits 0 unless --strict.
    """
    found = ctx.load_optional(f"the embedded defaults (history store {DEFAULT_STORE_PATH})")
    if found is not None:
        found.for_environment(environment)  # an unknown environment is a usage error
    # Without a config, the defaults' Pushgateway and store; the services come below.
    cfg = found or ctx.embedded(service or DEMO_SERVICE, [environment])
    if not cfg.pushgateway.url:
        click.echo("warning: no Pushgateway URL (--pushgateway, PUSHGATEWAY_URL, config)", err=True)
        return ExitCode.UNAVAILABLE if strict else ExitCode.OK
    store = open_store(cfg.store.url)
    try:
        if service is not None or found is not None:
            services = [service or cfg.service]
        else:
            records = store.list_deployments(environment=environment)
            services = sorted({r.service for r in records})
        if not services:
            click.echo(f"warning: nothing to push: no rollouts in {environment}", err=True)
            return ExitCode.UNAVAILABLE if strict else ExitCode.OK
        warnings = []
        for name in services:
            deployment_metrics = DeploymentMetrics(CollectorRegistry(), store, service=name)
            warning = push_or_warn(cfg.pushgateway, deployment_metrics, environment)
            if warning:
                warnings.append(warning)
            else:
                click.echo(
                    f"pushed {name}/{environment} to {redact_url(cfg.pushgateway.url)} "
                    f"(job {cfg.pushgateway.job})"
                )
    finally:
        store.close()
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    return ExitCode.UNAVAILABLE if warnings and strict else ExitCode.OK
