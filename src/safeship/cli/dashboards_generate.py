"""`safeship dashboards generate`: write the Grafana dashboards as code into dashboards/."""

from __future__ import annotations

import json
from pathlib import Path

import click

from safeship.cli.exit_codes import ExitCode
from safeship.generated import write_or_check
from safeship.grafana.dashboards import DASHBOARDS_DIR, generated_files, validate_dashboard


@click.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a generated file is stale.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DASHBOARDS_DIR,
    show_default=True,
    help="Folder the dashboard JSON files are written to.",
)
def generate(check: bool, directory: Path) -> int:
    """Write the three safeship dashboards (deterministic Grafana JSON) into --dir.

    Each is first checked as `dashboards push` checks a file (Grafana's dashboard and
    panel schemas included); if one has a problem, nothing is written or checked.
    """
    files = generated_files(directory)
    problems = [
        problem
        for file in files
        for problem in validate_dashboard(json.loads(file.text), str(file.path))
    ]
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("error: the dashboards safeship generates do not validate", err=True)
        return ExitCode.FAILED
    ok = write_or_check(
        files, check=check, command="safeship dashboards generate", what="dashboards"
    )
    return ExitCode.OK if ok else ExitCode.FAILED
