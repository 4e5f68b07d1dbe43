"""Run promtool (Prometheus 2.42, Debian package `prometheus`) on the rules and their tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safeship.errors import PermanentError

TESTS_GLOB = ".prometheus/tests/*.yml"
TIMEOUT_SECONDS = 300.0


class PromtoolMissingError(PermanentError):
    """promtool is not on PATH."""


@dataclass(frozen=True)
class PromtoolResult:
    command: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr together

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def find_promtool(promtool: str | None = None) -> str:
    """The promtool executable, or an error saying how to install it."""
    found = shutil.which(promtool or "promtool")
    if found is None:
        raise PromtoolMissingError(
            "promtool is not installed: install the Debian package prometheus "
            "(apt-get install prometheus), which provides promtool"
        )
    return found


def run(args: Sequence[str], promtool: str | None = None) -> PromtoolResult:
    command = (find_promtool(promtool), *args)
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PermanentError(
            f"{' '.join(command)} did not finish in {TIMEOUT_SECONDS:.0f}s"
        ) from exc
    return PromtoolResult(command, proc.returncode, (proc.stdout + proc.stderr).strip())


def check_rules(files: Sequence[str | Path], promtool: str | None = None) -> PromtoolResult:
    """`promtool check rules --lint=all FILE...`."""
    return run(["check", "rules", "--lint=all", *map(str, files)], promtool)


def run_tests(files: Sequence[str | Path], promtool: str | None = None) -> PromtoolResult:
    """`promtool test rules FILE...` (rule_files are relative to each test file)."""
    return run(["test", "rules", *map(str, files)], promtool)


def find_tests(root: Path = Path(".")) -> list[Path]:
    """The rule unit tests in `.prometheus/tests/`, sorted."""
    return sorted(root.glob(TESTS_GLOB))
