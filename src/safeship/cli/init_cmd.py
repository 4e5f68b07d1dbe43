"""`safeship init`: a new project's safeship.yaml, hooks, alerting, dashboards and workflow."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from safeship.cli.exit_codes import ExitCode
from safeship.errors import ConfigError
from safeship.files import exists
from safeship.scaffold.project import ProjectFile, project_files
from safeship.scaffold.setup import (
    DEFAULT_ENVIRONMENTS,
    DEFAULT_SLOT_ADDRESSES,
    PROVIDERS,
    ROUTERS,
    Provider,
    Router,
    Setup,
)


def _service_name(folder: Path, router: str) -> str:
    """The folder's name as a service name (`My App` -> `my-app`), or `app`; for
    Kubernetes a DNS label (`my_app` -> `my-app`)."""
    allowed = r"[^a-z0-9-]+" if router == "kubernetes" else r"[^a-z0-9_.-]+"
    name = re.sub(allowed, "-", folder.resolve().name.lower()).strip("-._")
    return name[:57].rstrip("-") or "app"


def _on_terminal() -> bool:
    return sys.stdin.isatty()


def _text(value: str | None, prompt: str, default: str, interactive: bool) -> str:
    """The flag's value, else the answer to `prompt` on a terminal, else the default."""
    if value is not None:
        return value
    return click.prompt(prompt, default=default) if interactive else default


def _choice(
    value: str | None, prompt: str, choices: tuple[str, ...], default: str, interactive: bool
) -> str:
    if value is not None or not interactive:
        return value or default
    answer: str = click.prompt(prompt, default=default, type=click.Choice(choices))
    return answer


def _yes(value: bool | None, prompt: str, interactive: bool) -> bool:
    if value is not None:
        return value
    return click.confirm(prompt, default=True) if interactive else True


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@click.command("init")
@click.option("--router", type=click.Choice(ROUTERS), default=None, help="How traffic is split.")
@click.option(
    "--provider", type=click.Choice(PROVIDERS), default=None, help="Where the metrics come from."
)
@click.option("--service", default=None, help="The service's name [default: the folder's].")
@click.option(
    "--env",
    "environments",
    default=None,
    help="Environments in rollout order, comma-separated "
    f"[default: {','.join(DEFAULT_ENVIRONMENTS)}].",
)
@click.option(
    "--prometheus/--no-prometheus",
    default=None,
    help="Alerting rules, Alertmanager routing and the Pushgateway [default: yes].",
)
@click.option("--grafana/--no-grafana", default=None, help="Dashboards as code [default: yes].")
@click.option(
    "--slot-addresses",
    default=None,
    help="The two slots' HOST:PORT for local and nginx routers "
    f"[default: {','.join(DEFAULT_SLOT_ADDRESSES)}].",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder.",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option("-y", "--yes", is_flag=True, help="Ask nothing: the defaults for what is not given.")
def init(
    router: Router | None,
    provider: Provider | None,
    service: str | None,
    environments: str | None,
    prometheus: bool | None,
    grafana: bool | None,
    slot_addresses: str | None,
    directory: Path,
    force: bool,
    yes: bool,
) -> int:
    """Write a safeship.yaml for this project and every file it names: hook scripts,
    alerting rules with their unit tests, Alertmanager routing, dashboards and a GitHub
    deploy workflow; only what the chosen setup uses.

    On a terminal it asks for what the flags leave out; with -y, or piped, it takes the
    defaults. Nothing is written if any file exists, unless --force.
    """
    interactive = not yes and _on_terminal()
    chosen_router = _choice(router, "Router", ROUTERS, "local", interactive)
    default_provider = "prometheus" if chosen_router == "kubernetes" else "scrape"
    chosen_provider = _choice(
        provider, "Metrics provider", PROVIDERS, default_provider, interactive
    )
    addresses = _split(slot_addresses) if slot_addresses is not None else DEFAULT_SLOT_ADDRESSES
    if len(addresses) != 2:
        raise ConfigError(
            f"--slot-addresses {slot_addresses!r}: expected two HOST:PORT, a comma between"
        )
    default_envs = ",".join(DEFAULT_ENVIRONMENTS)
    setup = Setup(
        service=_text(
            service, "Service name", _service_name(directory, chosen_router), interactive
        ),
        router=ROUTERS[ROUTERS.index(chosen_router)],
        provider=PROVIDERS[PROVIDERS.index(chosen_provider)],
        environments=_split(
            _text(environments, "Environments, in rollout order", default_envs, interactive)
        ),
        prometheus=_yes(prometheus, "Prometheus (alerting rules, Alertmanager)?", interactive),
        grafana=_yes(grafana, "Grafana (dashboards)?", interactive),
        slot_addresses=(addresses[0], addresses[1]),
    )
    files = project_files(setup)
    for file in files:
        _refuse_blocked(directory, file.path)
    existing = [f.path for f in files if exists(directory / f.path)]
    if existing and not force:
        listed = ", ".join(str(p) for p in existing)
        raise ConfigError(
            f"{directory}: {listed} already exist{'s' if len(existing) == 1 else ''}; nothing "
            "was written (--force overwrites them)"
        )
    for file in files:
        _write(directory, file)
        click.echo(f"wrote {file.path}")
    _next_steps(setup, directory)
    return ExitCode.OK


def _refuse_blocked(directory: Path, relative: Path) -> None:
    """Before anything is written: a file where init needs a folder stops it."""
    for parent in reversed(relative.parents[:-1]):
        where = directory / parent
        if exists(where) and not where.is_dir():
            raise ConfigError(
                f"{where}: is a file where init writes {relative}; nothing was written "
                "(move it away, or run init in another folder)"
            )


def _write(directory: Path, file: ProjectFile) -> None:
    path = directory / file.path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # --force replaces the link, never writes through it
            path.unlink()
        path.write_text(file.text, encoding="utf-8")
        if file.executable:
            path.chmod(path.stat().st_mode | 0o111)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write: {exc.strerror or exc} (may you write in {directory}?)"
        ) from exc


def _next_steps(setup: Setup, directory: Path) -> None:
    where = "" if directory == Path(".") else f"cd {directory} && "
    steps = [f"{where}safeship config validate"]
    if setup.prometheus:
        steps.append(".prometheus/validate-alerts.sh      # promtool, amtool, lint")
    blue, green = setup.slot_addresses
    if setup.router == "local":
        steps.append(
            "safeship router serve --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 "
            f"--stable http://{blue} --canary http://{green} --state-file .safeship/router.json &"
        )
    if setup.router in ("local", "nginx"):
        steps += [
            "# the stable version in slot blue (here the sample service), where on-rollback.sh "
            "finds it:",
            "mkdir -p .safeship/slots && { safeship demo service --listen "
            f"{blue} --service {setup.service} --environment {setup.environments[-1]} "
            "--version v1 --track stable >.safeship/slots/blue.log 2>&1 & "
            "echo $! >.safeship/slots/blue.pid; }",
        ]
    steps += [
        "safeship check",
        f"safeship rollout --env {setup.environments[-1]} --version v2",
    ]
    click.echo("\nnext:")
    for step in steps:
        click.echo(f"  {step}")
