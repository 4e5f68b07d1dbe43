"""`safeship rollout` command-line behaviour that needs no running services."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.cli.main import main
from safeship.store import open_store
from safeship.store.interface import DeploymentRecord


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "safeship.yaml"
    path.write_text(
        f"""
service: checkout
router:
  type: local
  admin_url: http://127.0.0.1:{closed_port()}
  timeout: 0.5
store:
  url: sqlite:///{tmp_path / "history.db"}
"""
    )
    return path


def test_unreachable_router_exits_3_before_anything_changes(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--config", str(config), "rollout", "--version", "v2"])
    assert code == 3
    assert "router not ready before the rollout" in capsys.readouterr().err
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        assert store.list_deployments() == []
    finally:
        store.close()


def test_json_output_of_a_rollout_that_ends_in_an_error_is_still_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--config", str(config), "rollout", "--version", "v2", "--deployment-id", "d1", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 3
    report = json.loads(out)
    assert report["schema_version"] == 1
    assert (report["deployment_id"], report["outcome"], report["phase"]) == ("d1", None, None)
    assert report["error_type"] == "RouterError"
    assert "router not ready before the rollout" in report["error"]
    assert "router not ready before the rollout" in err


def test_rollout_without_version_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "rollout"]) == 2
    assert "--version is required" in capsys.readouterr().err


def test_bad_steps_override_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_STEPS", "10,5")
    assert main(["--config", str(config), "rollout", "--version", "v2"]) == 2
    assert "canary.steps" in capsys.readouterr().err


def test_status_with_nothing_running(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "rollout", "status"]) == 0
    assert "no unfinished rollouts" in capsys.readouterr().out


def test_history_commands_need_no_config_with_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no safeship.yaml here
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    assert main(["--store", url, "rollout", "list"]) == 0
    monkeypatch.setenv("SAFESHIP_STORE_URL", url)
    assert main(["rollout", "status"]) == 0
    assert "no unfinished rollouts" in capsys.readouterr().out


def test_prometheus_url_from_the_environment_reaches_every_environment(tmp_path: Path) -> None:
    from safeship.cli.context import Context

    path = tmp_path / "safeship.yaml"
    path.write_text(
        "service: checkout\n"
        "environments:\n  staging: {}\n  production:\n    prometheus: {timeout: 3}\n"
        "provider: {type: prometheus}\n"
    )
    cfg = Context(str(path), prometheus_url="http://prom.test:9090/").load()
    assert cfg.prometheus.url == "http://prom.test:9090"
    for name in ("staging", "production"):
        assert cfg.for_environment(name).prometheus.url == "http://prom.test:9090"
    assert cfg.for_environment("production").prometheus.timeout == 3


def test_a_rollout_with_a_row_but_no_state_is_listed_not_an_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its process was killed between the deployment row and its first state.
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        store.create_deployment(
            DeploymentRecord(
                id="d0", service="checkout", environment="production", version="v2", started_at=1.0
            )
        )
    finally:
        store.close()
    assert main(["--config", str(config), "rollout", "status"]) == 0
    assert "d0  production  v2  not started" in capsys.readouterr().out
    assert main(["--config", str(config), "rollout", "status", "d0", "--json"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)["rollouts"]
    assert (shown["deployment_id"], shown["phase"]) == ("d0", "not started")
    assert main(["--config", str(config), "rollout", "status", "nope"]) == 2
    assert "no rollout 'nope'" in capsys.readouterr().err
    # Aborting it closes it; nothing had moved.
    assert main(["--config", str(config), "rollout", "abort", "d0", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["outcome"] == "failed"
    assert main(["--config", str(config), "rollout", "status"]) == 0
    assert "no unfinished rollouts" in capsys.readouterr().out


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda s: s.pop("phase"), id="phase missing"),
        pytest.param(lambda s: s.pop("steps"), id="steps missing"),
        pytest.param(lambda s: s.update(phase="exploded"), id="unknown phase"),
        pytest.param(lambda s: s.update(steps="ten"), id="steps not numbers"),
    ],
)
@pytest.mark.parametrize(
    "command", [["status"], ["status", "d0"], ["resume", "d0"], ["abort", "d0"], ["promote", "d0"]]
)
def test_a_damaged_state_row_is_a_clear_error_never_a_traceback(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Any,
    command: list[str],
) -> None:
    state = {
        "deployment_id": "d0", "service": "checkout", "environment": "production",
        "version": "v2", "steps": [10, 50, 100], "started_at": 1.0, "updated_at": 1.0,
        "phase": "holding", "weight": 10,
    }  # fmt: skip
    damage(state)
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        store.create_deployment(
            DeploymentRecord(
                id="d0", service="checkout", environment="production", version="v2", started_at=1.0
            )
        )
        store.save_state("d0", 1.0, state)
    finally:
        store.close()

    code = main(["--config", str(config), "rollout", *command])

    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Error:" not in err.split("error:")[0]  # no bare exception type first
    if command[0] == "status":
        assert code == 0  # listed with what it has
    else:
        assert code in (1, 2, 3)
        assert "rollout 'd0'" in err
        assert "damaged" in err or "router not ready" in err


def test_explain_of_an_unknown_rollout_is_a_usage_error_like_promote(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("explain", "promote", "status"):
        assert main(["--config", str(config), "rollout", command, "01NOSUCHROLLOUT"]) == 2
        assert "no rollout '01NOSUCHROLLOUT' in the history store" in capsys.readouterr().err


def test_a_bad_hold_from_the_environment_names_the_variable_not_only_the_flag(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_WAIT_TIME", "5x")
    assert main(["--config", str(config), "rollout", "--version", "v2"]) == 2
    assert (
        "Invalid value for environment variable CANARY_WAIT_TIME (for '--hold'): '5x' is "
        "neither seconds (300) nor a duration (5m, 1h30m)." in capsys.readouterr().err
    )


@pytest.mark.parametrize(("written", "seconds"), [("300", 300.0), ("5m", 300.0),
                                                   ("1h30m", 5400.0), ("90s", 90.0)])  # fmt: skip
def test_a_hold_is_seconds_or_a_duration(written: str, seconds: float) -> None:
    from safeship.cli.params import SECONDS

    assert SECONDS.convert(written, None, None) == seconds


def test_steps_in_the_file_may_be_written_as_on_the_command_line() -> None:
    from safeship.config import parse_config

    config = parse_config('service: a\ncanary: {steps: "10, 50,100"}\n', "f.yaml", env={})
    assert config.canary.steps == (10, 50, 100)
