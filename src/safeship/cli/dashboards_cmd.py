"""`safeship dashboards push | versions | rollback`: dashboards as code in Grafana.

The Grafana URL comes from --url, $GRAFANA_URL or grafana.url; the token from the
config's grafana.token secret or $GRAFANA_API_KEY. Without either, push and rollback
warn and exit 0 (dashboards are optional) unless --strict (exit 3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.cli.output import emit_json
from safeship.config import DEFAULT_STORE_PATH, Config
from safeship.errors import ConfigError
from safeship.grafana.client import (
    TOKEN_ENV,
    URL_ENV,
    GrafanaClient,
    has_url_credentials,
    resolve_token,
    resolve_url,
)
from safeship.grafana.sync import DashboardResult, push, rollback
from safeship.ids import new_deployment_id
from safeship.redact import redact_url
from safeship.store import open_store

_url_option = click.option(
    "--url",
    envvar="GRAFANA_URL",
    default=None,
    metavar="URL",
    help="Grafana [env GRAFANA_URL; default: grafana.url].",
)
_strict_option = click.option(
    "--strict", is_flag=True, help="Exit 3 (not 0) when no Grafana URL or token is set."
)


@click.group()
def dashboards() -> None:
    """Push dashboards to Grafana, list their versions, roll them back."""


def _config(ctx: Context) -> Config:
    """The config, or without one the embedded defaults: GRAFANA_URL and GRAFANA_API_KEY,
    `dashboards/*.json`, the default history store; the service (which only names the
    dashboard-update counters) is the folder's name."""
    found = ctx.load_optional(
        f"the embedded defaults ({URL_ENV}, {TOKEN_ENV}, dashboards/*.json, history store "
        f"{DEFAULT_STORE_PATH})"
    )
    return found or ctx.embedded(folder_service())


def folder_service() -> str:
    """The current folder's name as a service name (as docker compose names a project)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path.cwd().name).strip("-._")
    return name or "default"


def _client(cfg: Config, url: str | None) -> tuple[GrafanaClient | None, str]:
    """A client, or None and why not."""
    base = resolve_url(cfg.grafana, url)
    if not base:
        return None, "no Grafana URL (--url, GRAFANA_URL, grafana.url)"
    try:
        token = resolve_token(cfg.grafana)
    except ConfigError as exc:
        return None, f"no Grafana token: {exc}"
    if not token and not has_url_credentials(base):
        return None, f"no Grafana token ({TOKEN_ENV} or grafana.token)"
    client = GrafanaClient(base, token, timeout=cfg.grafana.timeout, retries=cfg.grafana.retries)
    return client, ""


def _skip(why: str, strict: bool) -> int:
    click.echo(f"warning: dashboards skipped: {why}", err=True)
    return ExitCode.UNAVAILABLE if strict else ExitCode.OK


def _report(results: list[DashboardResult], redact: Callable[[str], str]) -> int:
    for r in results:
        versions = ""
        if r.version_after is not None:
            versions = f" v{r.version_before if r.version_before is not None else '-'}"
            versions += f" -> v{r.version_after}"
        line = f"{r.status:<9} {r.uid or '-'}{versions}  {r.source}"
        if r.detail and r.ok:
            line += f": {redact(r.detail)}"
        click.echo(line)
        if not r.ok:
            click.echo(f"error: {redact(r.detail)}", err=True)
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILED


@dashboards.command("push")
@_url_option
@_strict_option
@click.option(
    "--deployment-id",
    envvar="SAFESHIP_DEPLOYMENT_ID",
    default=None,
    help="Record the versions under this deployment [env SAFESHIP_DEPLOYMENT_ID; default: new].",
)
@click.option(
    "--commit", envvar="GITHUB_SHA", default=None, help="Commit named in the version message."
)
@pass_context
def push_cmd(
    ctx: Context, url: str | None, strict: bool, deployment_id: str | None, commit: str | None
) -> int:
    """Validate and push every dashboard file (grafana.dashboards globs) to Grafana.

    Unchanged dashboards are skipped; every new version is recorded in the history
    store under the deployment id, so `rollback --deployment ID` can undo it. A bad
    file fails alone (exit 1) while the others are still pushed.
    """
    cfg = _config(ctx)
    client, why = _client(cfg, url)
    if client is None:
        return _skip(why, strict)
    deployment_id = deployment_id or new_deployment_id(time.time())
    store = open_store(cfg.store.url)
    try:
        with client:
            results = push(
                cfg.grafana,
                client,
                store,
                service=cfg.service,
                deployment_id=deployment_id,
                commit=commit,
            )
            code = _report(results, client.redact)
            if not results:
                click.echo(
                    f"warning: no dashboard files match {', '.join(cfg.grafana.dashboards)}",
                    err=True,
                )
            click.echo(f"deployment {deployment_id}: Grafana {client.shown_url}")
    finally:
        store.close()
    return code


@dashboards.command("versions")
@_url_option
@click.argument("uid")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def versions_cmd(ctx: Context, url: str | None, uid: str, as_json: bool) -> int:
    """List the versions Grafana keeps of dashboard UID, newest first."""
    cfg = _config(ctx)
    client, why = _client(cfg, url)
    if client is None:
        click.echo(f"error: {why}", err=True)
        return ExitCode.USAGE
    with client:
        found = client.versions(uid)
    if as_json:
        items: list[dict[str, Any]] = [
            {
                "version": v.version,
                "parent_version": v.parent_version,
                "restored_from": v.restored_from,
                "created": v.created,
                "created_by": v.created_by,
                "message": v.message,
            }
            for v in found
        ]
        emit_json({"uid": uid, "grafana": redact_url(client.url), "versions": items})
        return ExitCode.OK
    for v in found:
        restored = f" (restored from {v.restored_from})" if v.restored_from else ""
        click.echo(f"{v.version:>5}  {v.created:<25} {v.created_by:<16} {v.message}{restored}")
    return ExitCode.OK


@dashboards.command("rollback")
@_url_option
@_strict_option
@click.option("--deployment", "deployment_id", default=None, help="Undo this deployment's push.")
@click.option("--uid", default=None, help="Restore this one dashboard (with --to-version).")
@click.option(
    "--to-version",
    type=click.IntRange(min=1),
    default=None,
    help="The version --uid is restored to.",
)
@pass_context
def rollback_cmd(
    ctx: Context,
    url: str | None,
    strict: bool,
    deployment_id: str | None,
    uid: str | None,
    to_version: int | None,
) -> int:
    """Restore dashboards to the versions they had before a deployment (or one to a version).

    Grafana saves each restore as a new version; nothing is deleted.
    """
    by_deployment = deployment_id is not None
    by_uid = uid is not None and to_version is not None
    if by_deployment == by_uid or (not by_uid and (uid is not None or to_version is not None)):
        raise click.UsageError("give either --deployment ID, or --uid UID and --to-version N")
    cfg = _config(ctx)
    client, why = _client(cfg, url)
    if client is None:
        return _skip(why, strict)
    store = open_store(cfg.store.url)
    try:
        with client:
            results = rollback(
                client,
                store,
                service=cfg.service,
                deployment_id=deployment_id,
                uid=uid,
                to_version=to_version,
            )
            if not results:
                click.echo(f"no dashboard versions recorded for deployment {deployment_id}")
            code = _report(results, client.redact)
    finally:
        store.close()
    return code
