"""`safeship router`: the configured router's state, and the embedded local router itself."""

from __future__ import annotations

import json

import click

from safeship.cli.context import Context, environment_settings
from safeship.cli.exit_codes import ExitCode
from safeship.errors import RouterError
from safeship.routers import build_router, local_proxy


@click.group()
def router() -> None:
    """The configured router's state; the embedded `local` router."""


@router.command()
@click.option(
    "--env",
    "environment",
    envvar="SAFESHIP_ENVIRONMENT",
    help="Environment whose router to read [default: the only one configured].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@click.pass_context
def status(click_ctx: click.Context, environment: str | None, as_json: bool) -> int:
    """Read the router: health, canary weight in force, the slot the next canary goes into.

    Changes nothing. Exit 0 when the router answers, 3 when it does not.
    """
    settings = environment_settings(click_ctx.ensure_object(Context).load(), environment)
    report: dict[str, object] = {
        "environment": settings.environment,
        "type": settings.router.type,
    }
    target = build_router(settings.router)
    try:
        health = target.health()
        report |= {"healthy": health.ok, "detail": health.detail}
        try:
            report["canary_weight"] = target.get_weight()
            slots = target.slots()
            report["stable_slot"] = slots.stable.name
            report["stable_address"] = slots.stable.address
            report["canary_slot"] = slots.canary.name
            report["canary_address"] = slots.canary.address
        except RouterError as exc:
            report |= {"healthy": False, "detail": str(exc)}
    finally:
        target.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if value is not None:
                click.echo(f"{key}: {value}")
    return ExitCode.OK if report["healthy"] else ExitCode.UNAVAILABLE


@router.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def serve(ctx: click.Context) -> int:
    """Run the local weighted proxy in the foreground (its own process, apart from rollouts).

    Options: --listen HOST:PORT --admin HOST:PORT --stable URL --canary URL
    [--weight N] [--state-file PATH] [--allow-remote] [--admin-token-file PATH].
    The admin API stays on loopback: another address needs --allow-remote and a
    token (--admin-token-file, or $SAFESHIP_ADMIN_TOKEN) that every admin call
    must send as `Authorization: Bearer TOKEN` (router.admin_token in the config).
    """
    return local_proxy.main(list(ctx.args))
