"""Every hook an example config names exists under examples/ and does what it says.

The sample-service hooks run in every rollout of
tests/integration/test_rollout_routers.py; the Kubernetes one is run here
against a stand-in `kubectl` that records what it was asked.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from safeship.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_hook_an_example_names_exists_and_is_executable(example: Path) -> None:
    config = load_config(example, env={})
    hooks = config.hooks
    commands = [
        h.command
        for stage in (
            hooks.pre_rollout,
            hooks.pre_promotion,
            hooks.post_promotion,
            hooks.on_rollback,
        )
        for h in stage
    ]
    for command in commands:
        program = command if isinstance(command, str) else command[0]
        path = ROOT / program
        assert path.is_file(), f"{example.name} names {program}, which does not exist"
        assert path.stat().st_mode & stat.S_IXUSR, f"{program} is not executable"
        assert path.is_relative_to(ROOT / "examples"), f"{program} is not under examples/"


def test_the_kubernetes_hook_sets_the_canary_slots_image_and_waits(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "kubectl"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "SAFESHIP_CANARY_SLOT": "checkout-green",
        "SAFESHIP_VERSION": "v7",
    }
    done = subprocess.run(
        [str(ROOT / "examples" / "hooks" / "kubernetes-set-image.sh")],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "--namespace shop set image deployment/checkout-green "
        "checkout=registry.example.com/checkout:v7",
        "--namespace shop rollout status deployment/checkout-green --timeout 300s",
    ]
    outside = subprocess.run(
        [str(ROOT / "examples" / "hooks" / "kubernetes-set-image.sh")],
        env={"PATH": env["PATH"]}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert outside.returncode != 0
    assert "run this as a safeship hook" in outside.stderr
