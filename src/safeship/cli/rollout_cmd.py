"""`safeship rollout` and its subcommands: run, promote, abort, resume, status, list, explain."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import click
from rich.console import Console

from safeship.ci.rollout import GitHubRolloutReport
from safeship.cli import params
from safeship.cli.context import Context, environment_settings, pass_context
from safeship.cli.exit_codes import ExitCode, for_outcome
from safeship.cli.live import LiveView
from safeship.cli.output import emit_json, seconds, when
from safeship.config import (
    DEFAULT_STORE_PATH,
    DEFAULT_STORE_URL,
    Config,
    parse_steps,
    secret_values,
)
from safeship.errors import SafeshipError, StoreError, StoreUnavailableError
from safeship.grafana.client import GrafanaClient
from safeship.grafana.follow import DashboardFollower
from safeship.ids import new_deployment_id
from safeship.metrics.push import push_or_warn
from safeship.rollout.commit_time import commit_time as read_commit_time
from safeship.rollout.controller import RolloutController, RolloutEvent
from safeship.rollout.machine import Phase, RolloutState
from safeship.rollout.story import rollout_story
from safeship.rollout.wiring import controller_for
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord, Store


@click.group(invoke_without_command=True)
@click.option(
    "--env",
    "environment",
    envvar="SAFESHIP_ENVIRONMENT",
    help="Target environment [env SAFESHIP_ENVIRONMENT; default: the only one configured].",
)
@click.option(
    "--version",
    "version",
    envvar="SAFESHIP_VERSION",
    help="Version to roll out (tag or commit) [env SAFESHIP_VERSION].",
)
@click.option(
    "--deployment-id",
    default=None,
    help="Use this id (e.g. the CI run id) instead of a generated one.",
)
@click.option(
    "--commit-sha",
    envvar="SAFESHIP_COMMIT_SHA",
    default=None,
    help="Commit being deployed [env SAFESHIP_COMMIT_SHA].",
)
@click.option(
    "--commit-time",
    type=params.COMMIT_TIME,
    envvar="SAFESHIP_COMMIT_TIME",
    default=None,
    help="Commit time for lead time: ISO 8601 with an offset (as git's %cI), or epoch "
    "seconds [env SAFESHIP_COMMIT_TIME].",
)
@click.option(
    "--steps",
    envvar="CANARY_STEPS",
    default=None,
    help='Canary weights, e.g. "10,50,100" [env CANARY_STEPS].',
)
@click.option(
    "--hold",
    type=params.SECONDS,
    envvar="CANARY_WAIT_TIME",
    default=None,
    help="How long to hold each step: seconds or a duration (300, 5m) [env CANARY_WAIT_TIME].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def rollout(
    click_ctx: click.Context,
    environment: str | None,
    version: str | None,
    deployment_id: str | None,
    commit_sha: str | None,
    commit_time: float | None,
    steps: str | None,
    hold: float | None,
    as_json: bool,
) -> int | None:
    """Roll VERSION out to ENV as a progressive canary; promote or roll back by itself.

    Exit 0 promoted, 1 rolled back, 3 router unavailable before any change, 4 paused.
    """
    if click_ctx.invoked_subcommand is not None:
        return None
    ctx: Context = click_ctx.ensure_object(Context)
    if not version:
        raise click.UsageError("--version is required (or set SAFESHIP_VERSION)")
    cfg = ctx.load()
    settings = environment_settings(cfg, environment).with_overrides(
        steps=parse_steps(steps) if steps else None, hold=hold
    )
    commit = read_commit_time(commit_sha, commit_time)
    with (
        _store(cfg.store.url) as store,
        controller_for(settings, store) as controller,
        _github(cfg, as_json) as github,
    ):
        controller.on_event = _events(cfg, controller, show=not as_json, github=github)
        if commit.warning:
            _warn_once(commit.warning, github)
        deployment_id = deployment_id or new_deployment_id(time.time())
        try:
            with _json_errors(as_json, controller.store, deployment_id):
                state = controller.start(
                    version,
                    deployment_id=deployment_id,
                    commit_sha=commit_sha,
                    commit_time=commit.seconds,
                    commit_time_missing=commit.missing,
                )
        except KeyboardInterrupt:
            # The router keeps the weight it has; say how to finish from here.
            click.echo(
                f"interrupted: rollout {deployment_id} stays where it was; continue with "
                f"`safeship rollout resume {deployment_id}` or stop it with "
                f"`safeship rollout abort {deployment_id}`",
                err=True,
            )
            raise
        return _finish(cfg, controller, state, as_json, github)


@contextmanager
def _store(url: str) -> Iterator[Store]:
    try:
        store = open_store(url)
    except StoreError as exc:
        # Before anything changed (exit 3), like a database that does not answer.
        raise StoreUnavailableError(f"{exc}; nothing changed") from exc
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _github(cfg: Config, as_json: bool) -> Iterator[GitHubRolloutReport | None]:
    """Inside GitHub Actions, the run page's view of the rollout; None anywhere else."""
    github = GitHubRolloutReport.from_environment(secret_values(cfg), as_json=as_json)
    try:
        yield github
    finally:
        if github is not None:
            github.close()


@contextmanager
def _controller_of(
    ctx: Context, deployment_id: str, as_json: bool
) -> Iterator[tuple[Config, RolloutController, GitHubRolloutReport | None]]:
    """A controller for an existing rollout, configured for that rollout's environment.

    Without a config file, the rollout's service and environment on the embedded
    defaults (the local router at its default admin URL): a demo's rollout can be
    inspected and acted on from any folder, and a real one is never ended in the
    record while its router, unreachable, still sends the canary traffic.
    """
    found = ctx.load_optional(
        f"the embedded defaults (history store {DEFAULT_STORE_PATH}, the local router)"
    )
    url = found.store.url if found else ctx.store_url or DEFAULT_STORE_URL
    with _store(url) as store:
        record = store.get_deployment(deployment_id)
        if record is None:
            raise click.UsageError(f"no rollout {deployment_id!r} in the history store")
        cfg = found or ctx.embedded(record.service, [record.environment])
        settings = cfg.for_environment(record.environment)
        with controller_for(settings, store) as controller, _github(cfg, as_json) as github:
            controller.on_event = _events(cfg, controller, show=not as_json, github=github)
            yield cfg, controller, github


def _finish(
    cfg: Config,
    controller: RolloutController,
    state: RolloutState,
    as_json: bool,
    github: GitHubRolloutReport | None,
) -> int:
    """Report the rollout and push the metrics (a Pushgateway that is down only warns)."""
    story = rollout_story(controller.store, state.deployment_id)
    push_warning = push_or_warn(cfg.pushgateway, controller.metrics, state.environment)
    if push_warning:
        _warn_once(push_warning, github)
    if github is not None:
        github.finish(state, story)
    if as_json:
        emit_json(
            {
                "deployment_id": state.deployment_id,
                "outcome": state.outcome.value if state.outcome else state.phase.value,
                "phase": state.phase.value,
                "reason": state.reason.value if state.reason else None,
                "detail": state.detail,
                "weight": state.weight,
                "metrics_pushed": bool(cfg.pushgateway.url) and push_warning is None,
                "story": story,
            }
        )
    else:
        # The whole reason is in `explain` (and -v, --json): here, where to find it.
        click.echo(
            f"{state.deployment_id}: {state.phase.value} at weight {state.weight}%"
            + (f" ({state.reason.value})" if state.reason else "")
        )
        if state.reason:
            click.echo(f"  why: safeship rollout explain {state.deployment_id}")
        if state.phase is Phase.PAUSED:
            click.echo(f"  then: safeship rollout resume|promote|abort {state.deployment_id}")
    return for_outcome(state.outcome)


def _events(
    cfg: Config,
    controller: RolloutController,
    *,
    show: bool,
    github: GitHubRolloutReport | None,
) -> Callable[[RolloutEvent], None]:
    """Print progress; push the running totals when a rollout starts; let Grafana follow.

    The push at the start puts this environment's series (at their current
    values, zeros included) in the Pushgateway before the outcome changes them,
    so `increase()` sees the rollback the end-of-rollout push records. Grafana
    (when configured) gets a region annotation for the rollout, and a failed
    rollout's dashboards are restored; both only ever warn.
    """
    client = GrafanaClient.from_settings(cfg.grafana)
    follower = (
        DashboardFollower(client, cfg.grafana, controller.store) if client is not None else None
    )

    view = LiveView(Console(highlight=False), controller.strategy.hold) if show else None

    _shown_warnings.clear()  # one command, one set of warnings

    def warn(warnings: list[str]) -> None:
        for warning in warnings:
            _warn_once(warning, github)

    def on_event(event: RolloutEvent) -> None:
        if github is not None:
            github.on_event(event)
        if view is not None:
            view.event(event)
        if event.kind == "started":
            warning = push_or_warn(cfg.pushgateway, controller.metrics, event.state.environment)
            warn([warning] if warning else [])
            if follower is not None:
                warn(follower.started(event.state))
        elif event.kind == "finished" and follower is not None:
            warn(follower.finished(event.state))

    return on_event


_shown_warnings: set[str] = set()


def _warn_once(warning: str, github: GitHubRolloutReport | None) -> None:
    """A warning on stderr (and the run page): once, though a Pushgateway that is down
    fails both the push at the start and the one at the end."""
    if warning in _shown_warnings:
        return
    _shown_warnings.add(warning)
    click.echo(f"warning: {warning}", err=True)
    if github is not None:
        github.warning(warning)


@contextmanager
def _json_errors(as_json: bool, store: Store, deployment_id: str) -> Iterator[None]:
    """With --json, a rollout that ends in an error still prints JSON a script can read.

    The error goes on to the root command, which prints it and sets the exit code;
    the JSON adds where the rollout stands, when the store can still say.
    """
    try:
        yield
    except SafeshipError as exc:
        if as_json:
            stored: dict[str, Any] | None = None
            with suppress(SafeshipError):
                stored = store.load_state(deployment_id)
            emit_json(
                {
                    "deployment_id": deployment_id,
                    "outcome": None,
                    "phase": stored.get("phase") if stored else None,
                    "weight": stored.get("weight") if stored else None,
                    "error": str(exc),
                    "error_type": type(exc).__name__,
                }
            )
        raise


@rollout.command()
@click.argument("deployment_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def promote(ctx: Context, deployment_id: str, as_json: bool) -> int:
    """Promote a paused rollout now (pre-promotion hooks still run)."""
    with _controller_of(ctx, deployment_id, as_json) as (cfg, controller, github):
        with _json_errors(as_json, controller.store, deployment_id):
            state = controller.promote(deployment_id)
        return _finish(cfg, controller, state, as_json, github)


@rollout.command()
@click.argument("deployment_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def abort(ctx: Context, deployment_id: str, as_json: bool) -> int:
    """Send the canary no traffic and end the rollout as aborted; safe to repeat."""
    with _controller_of(ctx, deployment_id, as_json) as (cfg, controller, github):
        with _json_errors(as_json, controller.store, deployment_id):
            state = controller.abort(deployment_id)
        _finish(cfg, controller, state, as_json, github)
        if state.phase is Phase.ABORTED:
            return ExitCode.OK
        click.echo(
            f"error: rollout {deployment_id} had already ended as {state.phase.value}; "
            "nothing to abort",
            err=True,
        )
        return ExitCode.FAILED


@rollout.command()
@click.argument("deployment_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def resume(ctx: Context, deployment_id: str, as_json: bool) -> int:
    """Continue a paused or interrupted rollout (finishing any recorded unfinished action)."""
    with _controller_of(ctx, deployment_id, as_json) as (cfg, controller, github):
        with _json_errors(as_json, controller.store, deployment_id):
            state = controller.resume(deployment_id)
        return _finish(cfg, controller, state, as_json, github)


@rollout.command("list")
@click.option("--env", "environment", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_(ctx: Context, environment: str | None, limit: int, as_json: bool) -> None:
    """Recent rollouts, newest first."""
    url, service = ctx.history()
    with _store(url) as store:
        records = store.list_deployments(service=service, environment=environment, limit=limit)
        phases = {r.id: _phase(store, r.id) for r in records if r.outcome is None}
    if as_json:
        emit_json(
            {
                "deployments": [
                    {**dataclasses.asdict(r), "phase": phases.get(r.id, r.outcome)} for r in records
                ]
            }
        )
        return
    if not records:
        click.echo("no rollouts in the history store yet")
        return
    rows = [("ID", "ENVIRONMENT", "VERSION", "OUTCOME", "REASON", "STARTED", "DURATION")]
    rows += [
        (r.id, r.environment, r.version, str(phases.get(r.id, r.outcome)), r.reason or "",
         when(r.started_at), seconds(r.duration))
        for r in records
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _not_started(record: DeploymentRecord) -> dict[str, Any]:
    """A rollout whose process died before its first state: shown, never an error."""
    return {
        "deployment_id": record.id,
        "service": record.service,
        "environment": record.environment,
        "version": record.version,
        "phase": "not started",
        "weight": 0,
        "detail": "no state recorded (its process stopped first; no traffic moved): the next "
        f"rollout closes it, or `safeship rollout abort {record.id}`",
    }


def _phase(store: Store, deployment_id: str) -> str:
    state = store.load_state(deployment_id)
    return str(state.get("phase", "unknown")) if state else "unknown"


@rollout.command()
@click.argument("deployment_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def status(ctx: Context, deployment_id: str | None, as_json: bool) -> None:
    """The state of one rollout, or every unfinished one."""
    url, service = ctx.history()
    with _store(url) as store:
        if deployment_id:
            found = store.get_deployment(deployment_id)
            if found is None:
                raise click.UsageError(f"no rollout {deployment_id!r} in the history store")
            records = [found]
        else:
            records = [r for r in store.list_deployments(service=service) if r.finished_at is None]
        states = [store.load_state(r.id) or _not_started(r) for r in records]
    if as_json:
        emit_json({"rollouts": states})
        return
    if not states:
        click.echo("no unfinished rollouts")
    for data in states:
        click.echo(
            # .get: a damaged row is still listed, with what it has
            f"{data.get('deployment_id', '?')}  {data.get('environment', '?')}  "
            f"{data.get('version', '?')}  {data.get('phase', '?')} at {data.get('weight', '?')}%  "
            f"{data.get('detail') or ''}"
        )


@rollout.command()
@click.argument("deployment_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def explain(ctx: Context, deployment_id: str, as_json: bool) -> None:
    """The whole story of a rollout: every state and decision with its inputs."""
    url, _ = ctx.history()
    with _store(url) as store:
        if store.get_deployment(deployment_id) is None:  # a usage error, as for promote
            raise click.UsageError(f"no rollout {deployment_id!r} in the history store")
        story = rollout_story(store, deployment_id)
    if as_json:
        emit_json(story)
        return
    click.echo(render_story(story))


def render_story(story: dict[str, Any]) -> str:
    """The story as text a person reads top to bottom."""
    d = story["deployment"]
    lines = [
        f"rollout {d['id']}: {d['service']} {d['version']} -> {d['environment']}",
        f"  outcome: {d['outcome'] or 'running'}"
        + (f" ({d['reason']})" if d["reason"] else "")
        + f", reached {d['max_weight']}%, {seconds(d['duration'])}",
    ]
    if story["cause"]:
        lines.append(f"  because: {story['cause']['reason']}")
    lines.append("traffic:")
    last_phase = None
    for state in story["states"]:
        if state["phase"] == last_phase:
            continue
        last_phase = state["phase"]
        target = state["target_weight"]
        weight = f"{state['weight']}%" + (f" -> {target}%" if target is not None else "")
        lines.append(f"  {when(state['at'])} {state['phase']:<13} {weight}")
    lines.append("decisions:")
    for dec in story["decisions"]:
        lines.append(
            f"  #{dec['seq']:<3} {when(dec['at'])} {dec['weight']:>3}% "
            f"{dec['action']:<9} {dec['result']:<12} {dec['reason']}"
        )
        verdict = dec["inputs"].get("verdict")
        if verdict and dec["action"] != "continue":
            samples = verdict["samples"]
            window = verdict["window"]
            lines.append(
                f"        window {window['seconds']}s; canary {samples['canary_errors']:.0f}/"
                f"{samples['canary_requests']:.0f} errors, baseline "
                f"{samples['baseline_errors']:.0f}/{samples['baseline_requests']:.0f}"
            )
            for check in verdict["checks"]:
                lines.append(f"        {check['name']}: {check['result']} - {check['reason']}")
            for name, query in verdict.get("queries", {}).items():
                lines.append(f"        query[{name}]: {query}")
    return "\n".join(lines)
