"""action.yml run the way the runner runs a composite action, step by step in bash.

Each `run:` step gets the environment the runner would give it: GITHUB_ACTIONS,
GITHUB_ACTION_PATH (the repository root), RUNNER_TEMP, the GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY files, and the step's own `env:` with the inputs filled in.
The install step runs against a stand-in `python3` (no network, no slow pip), so
its command line is checked for real; the safeship it would install is this
repository's, already in the test's virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from safeship.demo.load import LoadGenerator
from safeship.demo.service import ServiceProcess, start_service
from safeship.routers.local import LocalProxyProcess, start_local_proxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    return data


def step(action: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in action["runs"]["steps"] if s["name"] == name)
    return found


def evaluate(value: str, inputs: dict[str, str], github: dict[str, str]) -> str:
    """The few expressions action.yml uses: inputs.* and github.* (a dotted name is one key)."""

    def one(match: re.Match[str]) -> str:
        context, _, name = match.group(1).partition(".")
        return {"inputs": inputs, "github": github}[context][name]

    return EXPRESSION.sub(one, value)


@dataclass
class Runner:
    """The files and variables the runner provides to every step of one action run."""

    tmp: Path
    github_sha: str = "0123456789abcdef0123456789abcdef01234567"
    head_commit_timestamp: str = ""  # github.event.head_commit.timestamp: push events only

    def __post_init__(self) -> None:
        self.temp = self.tmp / "runner-temp"
        self.temp.mkdir()
        self.output = self.tmp / "github_output"
        self.summary = self.tmp / "step_summary.md"
        self.output.touch()
        self.summary.touch()

    def run_step(
        self,
        action: dict[str, Any],
        name: str,
        given: dict[str, str],
        *,
        path: str,
        cwd: Path,
    ) -> subprocess.CompletedProcess[str]:
        spec = step(action, name)
        assert spec["shell"] == "bash"
        inputs = {key: str(i.get("default", "")) for key, i in action["inputs"].items()}
        github = {
            "sha": self.github_sha,
            "event.head_commit.timestamp": self.head_commit_timestamp,
        }
        inputs = {key: evaluate(value, inputs, github) for key, value in inputs.items()}
        inputs.update(given)
        env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", str(self.tmp)),
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "RUNNER_TEMP": str(self.temp),
        }
        for key, value in spec.get("env", {}).items():
            env[key] = evaluate(str(value), inputs, github)
        # The runner's bash: `bash --noprofile --norc -eo pipefail {0}`.
        script = self.tmp / f"{spec.get('id', 'step')}.sh"
        script.write_text(spec["run"])
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def outputs(self) -> dict[str, str]:
        """$GITHUB_OUTPUT as the runner parses it (name=value, or the heredoc form)."""
        result: dict[str, str] = {}
        lines = iter(self.output.read_text().split("\n"))
        for line in lines:
            if "<<" in line and "=" not in line.split("<<", 1)[0]:
                key, delimiter = line.split("<<", 1)
                body: list[str] = []
                for next_line in lines:
                    if next_line == delimiter:
                        break
                    body.append(next_line)
                result[key] = "\n".join(body)
            elif line:
                key, value = line.split("=", 1)
                result[key] = value
        return result

    def action_outputs(self, action: dict[str, Any]) -> dict[str, str]:
        """The action's outputs, mapped from the step outputs as the runner maps them."""
        steps = {"run": self.outputs()}
        mapped = {}
        for key, spec in action["outputs"].items():
            match = EXPRESSION.fullmatch(spec["value"])
            assert match is not None, spec
            _, step_id, _, name = match.group(1).split(".")
            mapped[key] = steps[step_id].get(name, "")
        return mapped

    def use_installed_safeship(self) -> None:
        """What the install step leaves behind, from the test's own virtualenv."""
        bin_dir = self.temp / "safeship-venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "safeship").symlink_to(Path(sys.executable).parent / "safeship")


# --- the definition ------------------------------------------------------------------------


def test_inputs_reach_the_command_only_through_env(action: dict[str, Any]) -> None:
    assert action["runs"]["using"] == "composite"
    assert {"command", "config", "environment", "version", "store-url", "args"} <= set(
        action["inputs"]
    )
    for spec in action["runs"]["steps"]:
        assert "${{" not in spec["run"], f"expression inside run: of {spec['name']!r}"
    env = step(action, "Run safeship")["env"]
    assert env["SAFESHIP_CONFIG"] == "${{ inputs.config }}"
    assert env["SAFESHIP_ENVIRONMENT"] == "${{ inputs.environment }}"
    assert env["SAFESHIP_VERSION"] == "${{ inputs.version }}"
    assert env["SAFESHIP_STORE_URL"] == "${{ inputs.store-url }}"
    assert env["SAFESHIP_COMMIT_TIME"] == "${{ inputs.commit-time }}"
    assert env["SAFESHIP_COMMAND"] == "${{ inputs.command }}"
    assert env["SAFESHIP_ARGS"] == "${{ inputs.args }}"


def test_outputs_come_from_the_run_step(action: dict[str, Any]) -> None:
    assert step(action, "Run safeship")["id"] == "run"
    outputs = {key: spec["value"] for key, spec in action["outputs"].items()}
    assert outputs["outcome"] == "${{ steps.run.outputs.outcome }}"
    assert outputs["deployment-id"] == "${{ steps.run.outputs.deployment_id }}"
    assert outputs["prometheus_reachable"] == "${{ steps.run.outputs.prometheus_reachable }}"


def test_install_step_installs_the_actions_own_checkout_into_a_virtualenv(
    action: dict[str, Any], tmp_path: Path
) -> None:
    """A stand-in python3 records the commands; the real install would be pip's."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    log = tmp_path / "calls.log"
    (fake_bin / "python3").write_text(
        "#!/bin/bash\n"
        f'echo "python3 $*" >> {log}\n'
        '[ "$1 $2" = "-m venv" ] || exit 9\n'
        'mkdir -p "$3/bin"\n'
        f'printf \'#!/bin/bash\\necho "venv-python $*" >> {log}\\n\' > "$3/bin/python"\n'
        'chmod +x "$3/bin/python"\n'
    )
    (fake_bin / "python3").chmod(0o755)
    runner = Runner(tmp_path)
    done = runner.run_step(
        action, "Install safeship", {}, path=f"{fake_bin}:/usr/bin:/bin", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        f"python3 -m venv {runner.temp}/safeship-venv",
        f"venv-python -m pip install --quiet --disable-pip-version-check {ROOT}",
    ]


def test_check_prometheus_through_the_action_sets_prometheus_reachable(
    action: dict[str, Any], tmp_path: Path
) -> None:
    runner = Runner(tmp_path)
    runner.use_installed_safeship()
    done = runner.run_step(
        action,
        "Run safeship",
        {"command": "check prometheus", "args": "--url http://127.0.0.1:9"},
        path="/usr/bin:/bin",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert runner.action_outputs(action)["prometheus_reachable"] == "false"


# --- a real rollout through the action ------------------------------------------------------


@dataclass
class Stack:
    stable: ServiceProcess
    canary: ServiceProcess
    proxy: LocalProxyProcess


@pytest.fixture
def stack() -> Iterator[Stack]:
    """Stable and canary services behind the local router, with load on it."""
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url) as proxy,
        LoadGenerator(proxy.url, rps=150),
    ):
        yield Stack(stable, canary, proxy)


def test_rollout_through_the_action_writes_outcome_and_deployment_id(
    action: dict[str, Any], stack: Stack, tmp_path: Path
) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        f"""
service: checkout
environments:
  production: {{}}
canary:
  steps: [50, 100]
  hold: 3
  warmup: 1
  interval: 1
  min_requests: 20
router:
  type: local
  admin_url: {stack.proxy.admin_url}
provider:
  type: scrape
  canary_url: {stack.canary.metrics_url}
  baseline_url: {stack.stable.metrics_url}
smoke_tests:
  - name: canary-health
    http: {{url: "{stack.canary.url}/healthz", expect_body: ok}}
"""
    )
    runner = Runner(tmp_path, head_commit_timestamp="2026-01-02T03:04:05+01:00")
    runner.use_installed_safeship()
    done = runner.run_step(
        action,
        "Run safeship",
        {
            "config": str(config),
            "environment": "production",
            "version": "v2",
            "store-url": f"sqlite:///{tmp_path / 'history.db'}",
            "args": "--deployment-id run-42",
        },
        path="/usr/bin:/bin",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = runner.action_outputs(action)
    assert outputs["outcome"] == "promoted"
    assert outputs["deployment-id"] == "run-42"
    assert outputs["weight"] == "100"
    assert "::group::Step 1/2: canary at 50%25" in done.stdout
    summary = runner.summary.read_text()
    assert summary.startswith("## safeship rollout `run-42`")
    assert "```mermaid\nxychart-beta\n" in summary
    # The version input defaults to the commit; given here, it is what was rolled out.
    explained = subprocess.run(
        [
            str(runner.temp / "safeship-venv" / "bin" / "safeship"),
            "--store",
            f"sqlite:///{tmp_path / 'history.db'}",
            "rollout",
            "explain",
            "run-42",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    deployment = json.loads(explained.stdout)["deployment"]
    assert deployment["version"] == "v2"
    # The commit time defaults to the pushed head commit's, for lead time.
    assert (deployment["commit_sha"], deployment["commit_time"]) == (
        runner.github_sha,
        1767319445.0,
    )
