"""`safeship metrics serve`: the deployment metrics on /metrics, read from the history store."""

from __future__ import annotations

import contextlib
import threading

import click

from safeship.cli.context import Context, pass_context
from safeship.metrics import initialize_metrics, server_address, shutdown_metrics
from safeship.store import open_store


@click.group()
def metrics() -> None:
    """Expose safeship's deployment metrics to Prometheus."""


@metrics.command()
@click.option("--address", default=None, help="Bind address [default: config, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: config, 8001].")
@pass_context
def serve(ctx: Context, address: str | None, port: int | None) -> None:
    """Serve /metrics until interrupted (deployment totals are cumulative, from the store)."""
    cfg = ctx.load()
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
            raise click.ClickException("the metrics server could not start (see the warning)")
        click.echo(f"serving http://{bound[0]}:{bound[1]}/metrics (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        shutdown_metrics()
        store.close()
