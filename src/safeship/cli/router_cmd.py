"""`safeship router serve`: run the embedded local router (a weighted loopback proxy)."""

from __future__ import annotations

import click

from safeship.routers import local_proxy


@click.group()
def router() -> None:
    """The embedded `local` router."""


@router.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def serve(ctx: click.Context) -> int:
    """Run the local weighted proxy in the foreground (its own process, apart from rollouts).

    Options: --listen HOST:PORT --admin HOST:PORT --stable URL --canary URL
    [--weight N] [--state-file PATH]. The admin API stays on loopback.
    """
    return local_proxy.main(list(ctx.args))
