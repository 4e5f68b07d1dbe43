"""`safeship router status` reads whatever router the config names and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeship.cli.main import main


def write(tmp_path: Path, router: str) -> Path:
    path = tmp_path / "safeship.yaml"
    path.write_text(f"service: checkout\nrouter:\n{router}")
    return path


def test_unreachable_router_is_reported_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(
        tmp_path,
        f"  type: haproxy\n  socket: {tmp_path / 'missing.sock'}\n"
        f"  state_file: {tmp_path / 'state.json'}\n",
    )
    code = main(["--config", str(config), "router", "status", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3
    assert report["type"] == "haproxy"
    assert report["healthy"] is False
    assert "missing.sock" in report["detail"]
    assert "canary_weight" not in report


def test_environment_is_required_when_several_are_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, "  type: local\n")
    config.write_text(config.read_text() + "environments:\n  staging: {}\n  production: {}\n")
    assert main(["--config", str(config), "router", "status"]) == 2
    assert "--env is required" in capsys.readouterr().err
