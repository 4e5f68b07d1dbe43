"""Where `safeship rollout` gets the commit time that DORA lead time is measured from.

The rollouts here run through the real CLI and store against a `FakeRouter`, and a
pre-rollout hook that fails ends each one at once (no traffic, no holds): what matters
is the deployment row written before the hook ran. The git lookups run the real git
on repositories made in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safeship.cli.main import main
from safeship.rollout import commit_time, wiring
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord
from safeship.testing import FakeRouter

#: 2026-01-02T02:04:05Z, written three ways below.
COMMITTED = 1767319445.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    addresses = {"blue": "127.0.0.1:9", "green": "127.0.0.1:9"}
    monkeypatch.setattr(wiring, "build_router", lambda settings: FakeRouter(addresses=addresses))
    path = tmp_path / "safeship.yaml"
    path.write_text(
        f"""
service: checkout
router:
  type: local
  admin_url: http://127.0.0.1:9
store:
  url: sqlite:///{tmp_path / "history.db"}
hooks:
  pre_rollout:
    - command: ["{sys.executable}", "-c", "raise SystemExit(1)"]
"""
    )
    return path


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` as a fixed committer at a fixed time, whatever the user's config."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_AUTHOR_DATE": "2025-06-01T00:00:00Z",  # not the time lead time counts from
        "GIT_COMMITTER_NAME": "c",
        "GIT_COMMITTER_EMAIL": "c@example.com",
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+01:00",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits, and no repository above tmp_path to fall back on."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "commit", "-q", "--allow-empty", "-m", "first")
    git(path, "commit", "-q", "--allow-empty", "-m", "second")
    return path


def fake_git(tmp_path: Path, script: str) -> Path:
    """A directory holding only a `git` that runs `script`, to put on PATH."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "git").chmod(0o755)
    return bin_dir


def rollout(config: Path, *args: str, deployment_id: str = "d1") -> DeploymentRecord:
    """Run `safeship rollout` and return the deployment row it recorded."""
    code = main(
        [
            "--config",
            str(config),
            "rollout",
            "--version",
            "v2",
            "--deployment-id",
            deployment_id,
            *args,
        ]
    )
    assert code == 1  # rolled back by the failing hook, after the row was written
    store = open_store(f"sqlite:///{config.parent / 'history.db'}")
    try:
        record = store.get_deployment(deployment_id)
    finally:
        store.close()
    assert record is not None
    return record


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("2026-01-02T03:04:05+01:00", id="iso with offset (git %cI)"),
        pytest.param("2026-01-02T02:04:05Z", id="iso in UTC (GitHub's head_commit.timestamp)"),
        pytest.param("1767319445", id="epoch seconds"),
        pytest.param(" 1767319445.0 ", id="epoch seconds, float, spaces"),
    ],
)
@pytest.mark.parametrize("source", ["option", "env"])
def test_commit_time_is_taken_as_iso_8601_or_epoch_seconds(
    config: Path, monkeypatch: pytest.MonkeyPatch, given: str, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("SAFESHIP_COMMIT_TIME", given)
        record = rollout(config)
    else:
        record = rollout(config, "--commit-time", given)
    assert record.commit_time == COMMITTED


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "2026-01-02T03:04:05",  # no offset: which time zone?
        "2026-01-02",
        "nan",
        "inf",
        "-5",
        "1969-12-31T23:59:59Z",
        "99999999999999",
        "",  # given on the command line, empty is a value, and not a time
    ],
)
def test_a_bad_commit_time_option_is_a_usage_error_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    code = main(["--config", str(config), "rollout", "--version", "v2", "--commit-time", bad])
    assert code == 2
    err = capsys.readouterr().err
    assert "--commit-time" in err
    assert "SAFESHIP_COMMIT_TIME" not in err
    assert "ISO 8601" in err


def test_a_bad_commit_time_in_the_environment_is_a_usage_error_naming_the_variable(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFESHIP_COMMIT_TIME", "last tuesday")
    assert main(["--config", str(config), "rollout", "--version", "v2"]) == 2
    err = capsys.readouterr().err
    assert "environment variable SAFESHIP_COMMIT_TIME (for '--commit-time'): 'last tuesday'" in err
    assert "ISO 8601" in err


# --- from git --------------------------------------------------------------------------------


@pytest.mark.parametrize("short", [False, True])
def test_the_commit_time_is_read_from_git_when_the_sha_is_in_the_checkout(
    config: Path,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short: bool,
) -> None:
    sha = git(repo, "rev-parse", "--short" if short else "--verify", "HEAD")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SAFESHIP_COMMIT_SHA", sha)  # as action.yml and deploy.yml set it
    record = rollout(config)
    assert (record.commit_sha, record.commit_time, record.commit_time_missing) == (
        sha,
        COMMITTED,  # the committer's time, not the author's
        None,
    )
    assert "commit time" not in capsys.readouterr().err


def test_a_shallow_clone_has_the_time_of_its_head_commit_only(
    config: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What actions/checkout leaves (fetch-depth 1): the commit being built, not its parent."""
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    monkeypatch.chdir(shallow)
    head = rollout(config, "--commit-sha", git(repo, "rev-parse", "HEAD"), deployment_id="h")
    assert head.commit_time == COMMITTED
    parent = git(repo, "rev-parse", "HEAD~1")
    record = rollout(config, "--commit-sha", parent, deployment_id="p")
    assert (record.commit_time, record.commit_time_missing) == (None, "sha_not_in_checkout")


def test_a_given_commit_time_is_used_without_asking_git(
    config: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "git-calls"
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, f'echo "$@" >> {calls}; exit 1')))
    monkeypatch.chdir(repo)
    record = rollout(config, "--commit-sha", "abc1234", "--commit-time", "5")
    assert (record.commit_time, record.commit_time_missing) == (5.0, None)
    assert not calls.exists()


@pytest.mark.parametrize(
    ("situation", "missing", "warned"),
    [
        ("sha not in the checkout", "sha_not_in_checkout", "is not in the checkout at"),
        ("not a checkout", "not_a_checkout", "is not in a git checkout"),
        ("no git", "no_git", "git is not on PATH"),
        ("git hangs", "git_failed", "did not answer in 0.5s"),
        ("git refuses", "git_failed", "detected dubious ownership"),
        ("the sha is ambiguous", "git_failed", "short object ID 0123 is ambiguous"),
        ("git prints no time", "git_failed", "printed 'tomorrow', not a commit time"),
    ],
)
def test_without_a_commit_time_from_git_the_rollout_runs_and_records_why(
    config: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    situation: str,
    missing: str,
    warned: str,
) -> None:
    monkeypatch.chdir(repo)
    sha = "0123456789abcdef0123456789abcdef01234567"
    if situation == "not a checkout":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
    elif situation == "no git":
        monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    elif situation == "git hangs":
        monkeypatch.setattr(commit_time, "GIT_TIMEOUT", 0.5)
        monkeypatch.setenv("PATH", str(fake_git(tmp_path, f"exec {shutil.which('sleep')} 30")))
    elif situation == "git refuses":
        script = "echo \"fatal: detected dubious ownership in repository at '$PWD'\" >&2; exit 128"
        monkeypatch.setenv("PATH", str(fake_git(tmp_path, script)))
    elif situation == "the sha is ambiguous":
        sha = "0123"
        script = (
            "echo 'error: short object ID 0123 is ambiguous' >&2; "
            "echo \"fatal: bad revision '0123^{commit}'\" >&2; exit 128"
        )
        monkeypatch.setenv("PATH", str(fake_git(tmp_path, script)))
    elif situation == "git prints no time":
        monkeypatch.setenv("PATH", str(fake_git(tmp_path, "echo tomorrow")))
    record = rollout(config, "--commit-sha", sha)
    assert (record.commit_sha, record.commit_time, record.commit_time_missing) == (
        sha,
        None,
        missing,
    )
    err = capsys.readouterr().err
    assert "warning: no commit time for lead time: " in err
    assert warned in err
    assert "--commit-time or SAFESHIP_COMMIT_TIME" in err


def test_a_sha_that_is_not_hexadecimal_is_never_passed_to_git(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = tmp_path / "git-calls"
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, f'echo "$@" >> {calls}')))
    record = rollout(config, "--commit-sha", "--output=/tmp/owned")
    assert (record.commit_time, record.commit_time_missing) == (None, "not_a_sha")
    assert not calls.exists()
    assert "is not a hexadecimal commit id" in capsys.readouterr().err


def test_without_sha_or_time_nothing_is_looked_up_or_printed(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = tmp_path / "git-calls"
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, f'echo "$@" >> {calls}')))
    record = rollout(config)
    assert (record.commit_sha, record.commit_time, record.commit_time_missing) == (
        None,
        None,
        "no_sha",
    )
    assert not calls.exists()
    assert "commit time" not in capsys.readouterr().err


def test_explain_says_why_a_rollout_has_no_commit_time(
    config: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo.parent)  # not a checkout: GIT_CEILING_DIRECTORIES stops above
    rollout(config, "--commit-sha", "abc1234")
    capsys.readouterr()
    assert main(["--config", str(config), "rollout", "explain", "d1", "--json"]) == 0
    deployment = json.loads(capsys.readouterr().out)["deployment"]
    assert (deployment["commit_time"], deployment["commit_time_missing"]) == (
        None,
        "not_a_checkout",
    )


def test_an_empty_commit_time_in_the_environment_is_none_given(
    config: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the action and deploy.yml pass outside push events: git has the time then."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SAFESHIP_COMMIT_TIME", "")
    monkeypatch.setenv("SAFESHIP_COMMIT_SHA", git(repo, "rev-parse", "HEAD"))
    assert rollout(config).commit_time == COMMITTED


# --- what the GitHub pipeline passes -------------------------------------------------------


def test_the_action_passes_the_commit_time_github_knows() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    given = action["inputs"]["commit-time"]
    assert given["default"] == "${{ github.event.head_commit.timestamp }}"  # push events
    (run,) = [s for s in action["runs"]["steps"] if s["name"] == "Run safeship"]
    assert run["env"]["SAFESHIP_COMMIT_SHA"] == "${{ github.sha }}"
    assert run["env"]["SAFESHIP_COMMIT_TIME"] == "${{ inputs.commit-time }}"


def test_the_deploy_workflow_passes_the_commit_time_and_checks_the_commit_out() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    assert workflow["env"]["SAFESHIP_COMMIT_SHA"] == "${{ github.sha }}"
    assert workflow["env"]["SAFESHIP_COMMIT_TIME"] == "${{ github.event.head_commit.timestamp }}"
    rollouts = 0
    for name, job in workflow["jobs"].items():
        for scope in (job, *job["steps"]):
            assert not {"SAFESHIP_COMMIT_SHA", "SAFESHIP_COMMIT_TIME"} & set(scope.get("env", {}))
        starts = [
            i
            for i, s in enumerate(job["steps"])
            if s.get("run", "").startswith("safeship rollout --")
        ]
        if not starts:
            continue
        rollouts += len(starts)
        # Outside push events (workflow_dispatch) there is no head_commit: git reads the
        # time from the checkout of github.sha, which even fetch-depth 1 has.
        (checkout,) = [
            i
            for i, s in enumerate(job["steps"])
            if s.get("uses", "").startswith("actions/checkout@")
        ]
        assert checkout < starts[0], name
        assert "ref" not in job["steps"][checkout].get("with", {}), name
    assert rollouts == 2  # staging and production
