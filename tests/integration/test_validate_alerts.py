""".prometheus/validate-alerts.sh: promtool, unit tests, safeship lint, the alert list."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".prometheus" / "validate-alerts.sh"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def safeship_on_path(tmp_path: Path) -> str:
    """A `safeship` that runs this checkout, whatever is installed."""
    wrapper = tmp_path / "safeship"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m safeship "$@"\n')
    wrapper.chmod(0o755)
    return str(tmp_path)


def test_the_script_passes_and_lists_every_alert(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        message = "promtool is not installed (Debian package `prometheus`)"
        if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PATH": f"{safeship_on_path(tmp_path)}:{os.environ['PATH']}"}
    result = run(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "ok: no findings" in result.stdout
    alerts = (ROOT / ".prometheus" / "alerts.yml").read_text()
    for line in alerts.splitlines():
        if line.strip().startswith("- alert: "):
            assert f"  {line.split(': ', 1)[1]}" in result.stdout


def test_without_promtool_it_says_what_to_install(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "grep", "sed"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{safeship_on_path(tmp_path)}:{tools}"}
    result = run(env)
    assert result.returncode == 1
    assert "promtool is not installed: apt-get install prometheus" in result.stderr
