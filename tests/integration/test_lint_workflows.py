"""scripts/lint-workflows.sh: clean on the repository, failing on a bad workflow.

The second half matters as much as the first: a gate that cannot fail proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOOLS = str(Path(sys.executable).parent)  # actionlint and zizmor from the dev extras


def lint(root: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / "lint-workflows.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": path},
    )


def copy_of_the_repository(tmp_path: Path) -> Path:
    """The files the script lints, without the repository's .venv (so PATH is used)."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / ".github", root / ".github")
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copy(ROOT / "action.yml", root / "action.yml")
    return root


def test_the_repositorys_workflows_and_action_lint_clean() -> None:
    done = lint(ROOT, f"{TOOLS}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_a_secret_expanded_inside_run_fails_the_gate(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    workflow = root / ".github" / "workflows" / "deploy.yml"
    text = workflow.read_text()
    bad = text.replace(
        "        run: safeship rules generate --check\n",
        '        run: safeship rules generate --check --store "${{ secrets.STORE }}"\n',
    )
    assert bad != text
    workflow.write_text(bad)
    done = lint(root, f"{TOOLS}:/usr/bin:/bin")
    assert done.returncode != 0
    assert "template-injection" in done.stdout + done.stderr
    assert "workflow lint failed" in done.stderr


def test_a_missing_tool_is_named(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    done = lint(root, "/usr/bin:/bin")
    assert done.returncode != 0
    assert "actionlint is not installed" in done.stderr
