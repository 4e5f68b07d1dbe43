"""Where `safeship rollout` gets the commit time that DORA lead time is measured from.

The rollouts here run through the real CLI and store against a `FakeRouter`, and a
pre-rollout hook that fails ends each one at once (no traffic, no holds): what matters
is the deployment row written before the hook ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.rollout import wiring
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord
from safeship.testing import FakeRouter

#: 2026-01-02T02:04:05Z, written three ways below.
COMMITTED = 1767319445.0


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


def rollout(config: Path, *args: str) -> DeploymentRecord:
    """Run `safeship rollout` as deployment d1 and return the row it recorded."""
    code = main(
        ["--config", str(config), "rollout", "--version", "v2", "--deployment-id", "d1", *args]
    )
    assert code == 1  # rolled back by the failing hook, after the row was written
    store = open_store(f"sqlite:///{config.parent / 'history.db'}")
    try:
        record = store.get_deployment("d1")
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
    assert "SAFESHIP_COMMIT_TIME='last tuesday'" in err
    assert "ISO 8601" in err
