"""Every command and option of the CLI, given hostile values, answers without a traceback.

The commands and their options come from the click group itself, so a new option is
driven the day it is added. Each value goes to one option at a time (the others keep
working fillers), in a project whose every service is a closed port. What must hold:
`main` returns a documented exit code, nothing escapes it, and neither stdout nor
stderr holds a traceback or the last-resort "unexpected ... a bug" message (that
message keeps users safe; this test keeps it unused).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from safeship.cli.exit_codes import ExitCode
from safeship.cli.main import cli, main
from safeship.errors import SafeshipError

HOSTILE = [
    "",
    "-1",
    "0",
    "1e400",  # a float beyond the double range: inf
    "nan",
    "99999999999999999999999",
    "9999-12-31",
    "caf\udce9",  # a non-UTF-8 byte, as Python passes it from argv (surrogateescape)
    "/dev/null/x",  # can be neither created nor written, even by root
    "x" * 5000,
    "${UNSET}%s%n\\\"'",
]
# What a command needs to get as far as its option: required options and arguments.
FILLERS = {
    "--env": "production",
    "deployment_id": "d-0",
    "uid": "checkout-rollouts",
    "file": "safeship.yaml",
}
ALLOWED_CODES = {int(code) for code in ExitCode} | {130}
FILLERS_SERVE = {
    "--listen": "127.0.0.1:0",
    "--admin": "127.0.0.1:0",
    "--stable": "http://127.0.0.1:9",
    "--canary": "http://127.0.0.1:9",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def valued_params(command: click.Command) -> list[click.Parameter]:
    """Options that take a value, and arguments (flags have nothing to be hostile with)."""
    return [
        p
        for p in command.params
        if isinstance(p, click.Argument) or (isinstance(p, click.Option) and not p.is_flag)
    ]


def cases() -> Iterator[object]:
    yield from (pytest.param((), p, id=f"safeship {p.opts[0]}") for p in valued_params(cli))
    for path, command in commands(cli):
        for param in valued_params(command):
            yield pytest.param(path, param, id=f"{' '.join(path)} {param.opts[0]}")


def argv_for(
    path: tuple[str, ...], command: click.Command, under: click.Parameter, value: str
) -> list[str]:
    args: list[str] = list(path)
    for param in valued_params(command):
        if param is under:
            continue
        name = param.name or ""
        filler = FILLERS.get(param.opts[0], FILLERS.get(name))
        if param.required and filler is not None:
            args += [filler] if isinstance(param, click.Argument) else [param.opts[0], filler]
    if path == ("simulate",) and under.opts[0] != "--trials":
        args += ["--trials", "1"]
    if isinstance(under, click.Argument):
        return [*args, "--", value] if value.startswith("-") else [*args, value]
    return [*args, f"{under.opts[0]}={value}"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config whose every service is a closed port, and nothing that can block."""
    for name in ("SAFESHIP_CONFIG", "SAFESHIP_LOG_FORMAT", "CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GRAFANA_URL", "GRAFANA_API_KEY", "SAFESHIP_STORE", "CANARY_STEPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    port = closed_port()
    (tmp_path / "safeship.yaml").write_text(
        f"""
service: checkout
environments: {{staging: {{}}, production: {{}}}}
router: {{type: local, admin_url: "http://127.0.0.1:{port}", timeout: 0.5}}
provider: {{type: prometheus, url: "http://127.0.0.1:{port}", timeout: 0.5}}
prometheus: {{url: "http://127.0.0.1:{port}", timeout: 0.5, retries: 0}}
grafana: {{url: "http://127.0.0.1:{port}", token: t0ken, timeout: 0.5, retries: 0}}
pushgateway: {{url: "http://127.0.0.1:{port}"}}
store: {{url: "sqlite:///{tmp_path / "history.db"}"}}
""",
        encoding="utf-8",
    )

    def no_demo(*_: object, **__: object) -> None:
        raise SafeshipError("the demo would run now (this test stops it)")

    class Wakes:
        def wait(self, *_: object) -> bool:
            return True

    monkeypatch.setattr("safeship.cli.demo_cmd.run_demo", no_demo)
    monkeypatch.setattr("safeship.cli.metrics_cmd.threading.Event", Wakes)
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield tmp_path
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.mark.parametrize(("path", "param"), list(cases()))
def test_hostile_values_get_an_answer_never_a_traceback(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    path: tuple[str, ...],
    param: click.Parameter,
) -> None:
    command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    wrong = []
    for value in HOSTILE:
        argv = argv_for(path, command, param, value)
        code = main(argv)
        out, err = capsys.readouterr()
        if code not in ALLOWED_CODES or "Traceback" in out + err or "a bug in safeship" in err:
            wrong.append(f"safeship {' '.join(argv)[:120]!r} -> {code}\n{(out + err)[:300]}")
    assert not wrong, "\n".join(wrong)


def test_router_serve_refuses_hostile_values_without_a_traceback(tmp_path: Path) -> None:
    # `router serve` parses its own options (argparse, in the proxy): drive it as processes,
    # all at once (each starts Python), and give those that accept a value time to serve.
    runs = {}
    for option in ("--listen", "--admin", "--stable", "--canary", "--weight", "--state-file"):
        for value in ("", "nan", "/dev/null/x", "x" * 500):
            args = [sys.executable, "-m", "safeship", "router", "serve", f"{option}={value}"]
            for required in ("--listen", "--admin", "--stable", "--canary"):
                if option != required:
                    args.append(f"{required}={FILLERS_SERVE[required]}")
            runs[(option, value[:20])] = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
    deadline = time.monotonic() + 10  # refusals come in a second or two
    wrong = []
    for (option, value), process in runs.items():
        try:
            out, err = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()  # a value it accepts: it serves (nothing to refuse)
            out, err = process.communicate()
        if "Traceback" in out + err or (
            process.returncode not in ALLOWED_CODES and process.returncode != -9
        ):
            wrong.append(f"{option}={value!r} -> {process.returncode}: {err[-300:]}")
    assert not wrong, "\n".join(wrong)
