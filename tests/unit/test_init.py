"""`safeship init`: what it writes for each choice, and what it refuses to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from safeship.cli import init_cmd
from safeship.cli.exit_codes import ExitCode
from safeship.cli.main import main
from safeship.config import load_config
from safeship.errors import ConfigError
from safeship.scaffold import scripts
from safeship.scaffold.project import project_files
from safeship.scaffold.setup import PROVIDERS, ROUTERS, Setup

ROOT = Path(__file__).resolve().parents[2]


def _init(folder: Path, *args: str) -> int:
    return main(["init", "--dir", str(folder), "-y", *args])


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_setup_writes_a_config_the_loader_accepts(
    tmp_path: Path, router: str, provider: str
) -> None:
    setup = Setup(service="shop", router=router, provider=provider)  # type: ignore[arg-type]
    if router == "kubernetes" and provider == "scrape":
        with pytest.raises(ConfigError, match="use --provider prometheus"):
            project_files(setup)
        return
    for file in project_files(setup):
        path = tmp_path / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file.text)
    config = load_config(tmp_path / "safeship.yaml", env={})
    assert config.router.type == router
    assert config.provider.type == provider
    assert set(config.environments) == {"staging", "production"}
    for hook in (*config.hooks.pre_rollout, *config.hooks.on_rollback):
        script = tmp_path / hook.command[0]
        assert script.exists(), hook.command
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False)
        assert syntax.returncode == 0, syntax.stderr


def test_only_what_the_setup_uses(tmp_path: Path) -> None:
    assert _init(tmp_path, "--no-prometheus", "--no-grafana") == ExitCode.OK
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        ".github/workflows/deploy.yml",
        "deploy/on-rollback.sh",
        "deploy/pre-rollout.sh",
        "safeship.yaml",
    ]
    text = (tmp_path / "safeship.yaml").read_text()
    assert "alerting:" not in text
    assert "grafana:" not in text
    workflow = (tmp_path / ".github/workflows/deploy.yml").read_text()
    assert "metrics push" not in workflow
    assert "GRAFANA" not in workflow


def test_it_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "safeship.yaml").write_text("service: mine\n")
    assert _init(tmp_path) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "safeship.yaml already exists; nothing was written (--force overwrites them)" in err
    assert (tmp_path / "safeship.yaml").read_text() == "service: mine\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "safeship.yaml"]
    assert _init(tmp_path, "--force") == ExitCode.OK
    assert "written by `safeship init`" in (tmp_path / "safeship.yaml").read_text()


def test_hooks_are_executable_and_fail_clearly_outside_a_rollout(tmp_path: Path) -> None:
    assert _init(tmp_path) == ExitCode.OK
    for name in ("pre-rollout.sh", "on-rollback.sh"):
        hook = tmp_path / "deploy" / name
        assert hook.stat().st_mode & 0o111
        result = subprocess.run([str(hook)], capture_output=True, text=True, check=False)
        assert result.returncode != 0
        assert "run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router", "kubernetes", "--provider", "scrape"], "use --provider prometheus"),
        (["--provider", "prometheus", "--no-prometheus"], "needs a Prometheus"),
        (["--env", "prod,prod"], "an environment is named twice"),
        (["--env", "Prod Eu"], "--env 'Prod Eu': use letters"),
        (["--env", ","], "name at least one environment"),
        (["--service", "-x"], "--service '-x'"),
        (["--slot-addresses", "127.0.0.1:1"], "expected two HOST:PORT"),
        (["--slot-addresses", "a:1,a:1"], "two addresses"),
        (["--slot-addresses", "a:1,http://b:2"], "'http://b:2': expected HOST:PORT"),
        (["--slot-addresses", "a:1,a:99999"], "'a:99999': expected HOST:PORT (1-65535)"),
        (["--router", "kubernetes", "--service", "svc.x"], "Kubernetes names its HTTPRoute"),
    ],
)
def test_impossible_choices_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _init(tmp_path, *args) == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_on_a_terminal_it_asks_for_what_the_flags_leave_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init_cmd, "_on_terminal", lambda: True)
    answers = "haproxy\nprometheus\nbilling\nqa,live\ny\nn\n"
    result = CliRunner().invoke(
        init_cmd.init, ["--dir", str(tmp_path)], input=answers, standalone_mode=False
    )
    assert result.exception is None, result.output
    assert "Router" in result.output
    config = load_config(tmp_path / "safeship.yaml", env={})
    assert (config.service, config.router.type, config.provider.type) == (
        "billing",
        "haproxy",
        "prometheus",
    )
    assert list(config.environments) == ["qa", "live"]
    assert not (tmp_path / "dashboards").exists()


def test_the_service_defaults_to_the_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "My Shop"
    folder.mkdir()
    assert _init(folder) == ExitCode.OK
    assert load_config(folder / "safeship.yaml", env={}).service == "my-shop"


def test_the_workflow_runs_each_environment_after_the_last_through_the_action(
    tmp_path: Path,
) -> None:
    assert _init(tmp_path, "--env", "dev,staging,production") == ExitCode.OK
    workflow = yaml.safe_load((tmp_path / ".github/workflows/deploy.yml").read_text())
    jobs = workflow["jobs"]
    assert list(jobs) == ["deploy-dev", "deploy-staging", "deploy-production"]
    assert jobs["deploy-staging"]["needs"] == "deploy-dev"
    assert jobs["deploy-production"]["needs"] == "deploy-staging"
    rollout = next(s for s in jobs["deploy-production"]["steps"] if s.get("id") == "rollout")
    assert rollout["uses"].startswith("safeship/safeship@")
    assert rollout["with"]["environment"] == "production"
    assert jobs["deploy-production"]["concurrency"]["cancel-in-progress"] is False


def test_the_workflow_passes_actionlint(tmp_path: Path) -> None:
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if actionlint is None:
        pytest.skip("actionlint is not installed (make install)")
    assert _init(tmp_path) == ExitCode.OK
    result = subprocess.run(
        [actionlint, ".github/workflows/deploy.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_repository_validates_its_alerts_with_the_script_init_writes() -> None:
    assert (ROOT / ".prometheus/validate-alerts.sh").read_text() == scripts.VALIDATE_ALERTS


def test_the_alerting_commands_say_what_writes_their_files_in_an_empty_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "test"]) == ExitCode.FAILED
    assert (
        ".prometheus/alerts.yml: not found: `safeship rules generate` writes the rules and "
        "their unit tests from safeship.yaml (`safeship init` a whole project)"
    ) in capsys.readouterr().err
    (tmp_path / ".prometheus").mkdir()
    (tmp_path / ".prometheus/alerts.yml").write_text("groups: []\n")
    assert main(["rules", "test"]) == ExitCode.FAILED
    assert "no rule tests in .prometheus/tests/*.yml: `safeship rules generate`" in (
        capsys.readouterr().err
    )
    if shutil.which("amtool") is None:
        return  # the message below comes after amtool is found
    assert main(["alertmanager", "test"]) == ExitCode.USAGE
    assert (
        "error: .prometheus/alertmanager.yml: Alertmanager config not found "
        "(`safeship alertmanager generate` writes it and its routing cases from safeship.yaml)"
    ) in capsys.readouterr().err
    (tmp_path / ".prometheus/alertmanager.yml").write_text("route: {receiver: chat}\n")
    assert main(["alertmanager", "test"]) == ExitCode.USAGE
    assert "routing cases file not found (`safeship alertmanager generate` writes it" in (
        capsys.readouterr().err
    )


def test_the_pre_rollout_hook_refuses_a_slot_something_unknown_listens_on(
    tmp_path: Path,
) -> None:
    """A stable version started by hand without a pid file would answer for the canary."""
    import os
    import socket

    assert _init(tmp_path) == ExitCode.OK
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        address = f"127.0.0.1:{held.getsockname()[1]}"
        env = {
            **os.environ,
            "SAFESHIP_CANARY_SLOT": "green",
            "SAFESHIP_CANARY_ADDRESS": address,
            "SAFESHIP_SERVICE": "app",
            "SAFESHIP_ENVIRONMENT": "production",
            "SAFESHIP_VERSION": "v2",
        }
        result = subprocess.run(
            ["./deploy/pre-rollout.sh"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"something still listens on {address}" in result.stderr


def test_hooks_are_told_the_safeship_that_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safeship.rollout.hooks import rollout_env

    program = tmp_path / "bin" / "safeship"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(program), "rollout"])
    env = rollout_env(deployment_id="d", service="s", environment="e", version="v", weight=0)
    assert env["SAFESHIP_BIN"] == str(program)
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/site-packages/safeship/__main__.py"])
    env = rollout_env(deployment_id="d", service="s", environment="e", version="v", weight=0)
    assert "SAFESHIP_BIN" not in env


def test_names_yaml_would_read_as_something_else_stay_names(tmp_path: Path) -> None:
    """`--env yes,no`, `--service true` and a folder named 2024 are strings, not booleans."""
    assert _init(tmp_path, "--env", "yes,no", "--service", "true") == ExitCode.OK
    config = load_config(tmp_path / "safeship.yaml", env={})
    assert list(config.environments) == ["yes", "no"]
    assert config.service == "true"
    assert "HighErrorRateNo" in (tmp_path / ".prometheus/alerts.yml").read_text()
    folder = tmp_path / "2024"
    folder.mkdir()
    assert _init(folder) == ExitCode.OK
    assert load_config(folder / "safeship.yaml", env={}).service == "2024"


def test_a_kubernetes_service_from_the_folder_is_a_dns_label(tmp_path: Path) -> None:
    folder = tmp_path / "My_App.v2"
    folder.mkdir()
    assert _init(folder, "--router", "kubernetes") == ExitCode.OK
    config = load_config(folder / "safeship.yaml", env={})
    assert config.service == "my-app-v2"


def test_a_file_where_a_folder_goes_stops_init_before_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deploy").write_text("not a folder\n")
    assert _init(tmp_path, "--force") == ExitCode.USAGE
    assert "deploy: is a file where init writes deploy/pre-rollout.sh" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]


def test_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.yaml"
    (tmp_path / "project").mkdir()
    link = tmp_path / "project" / "safeship.yaml"
    link.symlink_to(target)  # dangling
    assert _init(tmp_path / "project") == ExitCode.USAGE
    assert not target.exists()
    assert _init(tmp_path / "project", "--force") == ExitCode.OK
    assert not target.exists()
    assert not link.is_symlink()
