"""Hooks and smoke tests: commands and HTTP checks run at fixed points of a rollout.

Commands are argv lists run without a shell unless the config asks for one,
always under a timeout, with the rollout's identity in their environment
(`SAFESHIP_DEPLOYMENT_ID`, `SAFESHIP_SERVICE`, `SAFESHIP_ENVIRONMENT`,
`SAFESHIP_VERSION`, `SAFESHIP_WEIGHT`) and the rollout's slots: the one the
canary goes into (`SAFESHIP_CANARY_SLOT`, `SAFESHIP_CANARY_ADDRESS`) and the
stable one (`SAFESHIP_STABLE_SLOT`, `SAFESHIP_STABLE_ADDRESS`,
`SAFESHIP_STABLE_VERSION`), so a pre-rollout hook can put the new version into
the canary slot and a smoke test knows what it is testing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from safeship.config import Hook, SmokeTest
from safeship.placement import Placement
from safeship.redact import redact_text, shown

_OUTPUT_TAIL = 2000


@dataclass(frozen=True)
class RunResult:
    """What one hook or smoke test did; `detail` is short and safe to store."""

    name: str
    passed: bool
    duration: float
    detail: str


def rollout_env(
    *, deployment_id: str, service: str, environment: str, version: str, weight: int
) -> dict[str, str]:
    env = {
        "SAFESHIP_DEPLOYMENT_ID": deployment_id,
        "SAFESHIP_SERVICE": service,
        "SAFESHIP_ENVIRONMENT": environment,
        "SAFESHIP_VERSION": version,
        "SAFESHIP_WEIGHT": str(weight),
    }
    program = running_program()
    if program is not None:
        env["SAFESHIP_BIN"] = program
    return env


def running_program() -> str | None:
    """The `safeship` executable this process runs as, for hooks that call safeship: one
    installed in a virtualenv (the GitHub action's, `.venv/bin`) is not on their PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "safeship" or not argv0.is_file():
        return None
    return str(argv0.absolute())


def slot_env(placement: Placement) -> dict[str, str]:
    """The rollout's slots for hooks: where to deploy, and what serves beside it.

    An address or version the rollout does not know is left out, never empty.
    """
    names = {
        "SAFESHIP_CANARY_SLOT": placement.canary.slot,
        "SAFESHIP_CANARY_ADDRESS": placement.canary.address,
        "SAFESHIP_STABLE_SLOT": placement.stable.slot,
        "SAFESHIP_STABLE_ADDRESS": placement.stable.address,
        "SAFESHIP_STABLE_VERSION": placement.stable.version,
    }
    return {name: value for name, value in names.items() if value is not None}


def run_command(
    name: str,
    command: tuple[str, ...] | str,
    *,
    shell: bool,
    timeout: float,
    env: Mapping[str, str],
    secrets: Iterable[str] = (),
) -> RunResult:
    """Run a command; a non-zero exit, a timeout or a missing program is a failure.

    The output kept for the record is scrubbed of `secrets` and URL passwords.
    """
    started = time.monotonic()
    full_env = {**os.environ, **env}
    try:
        proc = subprocess.run(
            command if shell else list(command),
            shell=shell,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return RunResult(name, False, time.monotonic() - started, f"timed out after {timeout:g}s")
    except OSError as exc:
        return RunResult(name, False, time.monotonic() - started, f"could not start: {exc}")
    duration = time.monotonic() - started
    if proc.returncode == 0:
        return RunResult(name, True, duration, "exit 0")
    tail = shown((proc.stderr or proc.stdout or "").strip(), secrets, _OUTPUT_TAIL, tail=True)
    return RunResult(name, False, duration, f"exit {proc.returncode}: {tail}".rstrip(": "))


def check_hook(hook: Hook) -> tuple[bool, str] | None:
    """Whether `run_hook` could start `hook`'s program (see `_check_program`)."""
    return _check_program(hook.command, shell=hook.shell, env={**os.environ, **hook.env})


def check_smoke_test(test: SmokeTest) -> tuple[bool, str] | None:
    """Whether `run_smoke_test` could start `test`'s command; None for an HTTP test."""
    if test.command is None:
        return None
    return _check_program(test.command, shell=test.shell, env=os.environ)


def _check_program(
    command: tuple[str, ...] | str, *, shell: bool, env: Mapping[str, str]
) -> tuple[bool, str] | None:
    """Whether `run_command` could start `command`'s program, and what to do if not.

    Resolved as it runs: a path from the working directory, a bare name on the
    PATH of `env`. A shell command is judged only when its first word is a plain
    path: a bare one may be a builtin or a function, one with `$`, `~` or a glob
    is the shell's to expand. None when there is nothing to judge.
    """
    if shell:
        script = command if isinstance(command, str) else command[0]
        try:
            words = shlex.split(script)
        except ValueError:
            return None
        if not words or "/" not in words[0] or re.search(r"[$`=~*?\[]", words[0]):
            return None
        program = words[0]
    else:
        program = command[0]
    if "/" not in program:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            return False, f"{program} is not on PATH: install it, or give its path"
        return True, f"{program} is {found}"
    path = Path(program)
    if not path.exists():
        if path.is_absolute():
            return False, f"{program} does not exist: fix the path, or install it there"
        return False, (
            f"{program} does not exist in {Path.cwd()} (commands run from the working "
            "directory): fix the path, or run safeship from the directory it is relative to"
        )
    if path.is_dir():
        return False, f"{program} is a directory, not a program: fix the path"
    if not os.access(path, os.X_OK):
        return False, f"{program} is not executable: chmod +x {program}"
    return True, f"{program} is executable"


def run_hook(
    stage: str, index: int, hook: Hook, env: Mapping[str, str], secrets: Iterable[str] = ()
) -> RunResult:
    return run_command(
        f"{stage}[{index}]",
        hook.command,
        shell=hook.shell,
        timeout=hook.timeout,
        env={**env, **hook.env},
        secrets=[*secrets, *hook.env.values()],
    )


def run_smoke_test(
    test: SmokeTest, env: Mapping[str, str], secrets: Iterable[str] = ()
) -> RunResult:
    """An HTTP expectation or a command, against the canary before it gets traffic."""
    if test.command is not None:
        return run_command(
            test.name,
            test.command,
            shell=test.shell,
            timeout=test.timeout,
            env=env,
            secrets=secrets,
        )
    assert test.http is not None  # guaranteed by SmokeTest's validator
    http = test.http
    shown = redact_text(f"{http.method} {http.url}", secrets)
    started = time.monotonic()
    try:
        response = httpx.request(http.method, http.url, timeout=http.timeout)
    except httpx.HTTPError as exc:
        return RunResult(
            test.name,
            False,
            time.monotonic() - started,
            redact_text(f"{shown}: {exc}", secrets),
        )
    duration = time.monotonic() - started
    if response.status_code != http.expect_status:
        return RunResult(
            test.name,
            False,
            duration,
            f"{shown}: status {response.status_code}, expected {http.expect_status}",
        )
    if http.expect_body is not None and http.expect_body not in response.text:
        return RunResult(
            test.name,
            False,
            duration,
            f"{shown}: body does not contain {http.expect_body!r}",
        )
    return RunResult(test.name, True, duration, f"{shown}: {response.status_code}")
