"""Every file of a new project, built from one `Setup`.

The alerting rules, their tests, the Alertmanager files and the dashboards are the
generators' own output for the safeship.yaml written here (read back through the real
loader), so `rules generate --check` and `alertmanager generate --check` pass on
them from the first commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safeship.config import Config, parse_config
from safeship.generated import GeneratedFile
from safeship.grafana.dashboards import DASHBOARDS_DIR
from safeship.grafana.dashboards import generated_files as dashboard_files
from safeship.rules import alertmanager
from safeship.rules import generate as rules
from safeship.scaffold import config_file, scripts, workflow
from safeship.scaffold.setup import Setup

CONFIG_FILE = Path("safeship.yaml")
VALIDATE_ALERTS = Path(".prometheus/validate-alerts.sh")


@dataclass(frozen=True)
class ProjectFile:
    path: Path  # relative to the project's root
    text: str
    executable: bool = False


def _project(files: tuple[GeneratedFile, ...]) -> list[ProjectFile]:
    return [ProjectFile(f.path, f.text) for f in files]


def config_of(setup: Setup) -> tuple[str, Config]:
    """The safeship.yaml text and what the loader makes of it (with no variables set)."""
    text = config_file.render(setup)
    return text, parse_config(text, str(CONFIG_FILE), env={})


def project_files(setup: Setup) -> list[ProjectFile]:
    """The files of `setup`, only those its choices use, in the order they are listed."""
    setup.validate()
    text, config = config_of(setup)
    files = [ProjectFile(CONFIG_FILE, text)]
    hooks = Path(config_file.HOOKS_DIR)
    if setup.runs_processes:
        files += [
            ProjectFile(hooks / "pre-rollout.sh", scripts.PRE_ROLLOUT_PROCESS, executable=True),
            ProjectFile(hooks / "on-rollback.sh", scripts.ON_ROLLBACK_PROCESS, executable=True),
        ]
    else:
        files.append(
            ProjectFile(
                hooks / "pre-rollout.sh", scripts.pre_rollout_kubernetes(setup), executable=True
            )
        )
    if setup.prometheus:
        job, kubernetes = config.pushgateway.job, config.uses_kubernetes
        files += _project(
            rules.generated_files(config.alerting, Path("."), job, kubernetes=kubernetes)
        )
        manifest = alertmanager.MANIFEST_PATH if kubernetes else None
        files += _project(
            alertmanager.generated_files(config.alerting, job, manifest_path=manifest)
        )
        files.append(ProjectFile(VALIDATE_ALERTS, scripts.VALIDATE_ALERTS, executable=True))
    if setup.grafana:
        files += _project(dashboard_files(DASHBOARDS_DIR))
    files.append(ProjectFile(Path(workflow.WORKFLOW_FILE), workflow.render(setup)))
    return files
