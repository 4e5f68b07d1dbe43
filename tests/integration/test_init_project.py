"""`safeship init` in an empty folder, then what a new user runs next, as they would run it.

The promise: the files init writes work as written. The alert tests, the routing
tests and validate-alerts.sh pass; `check` passes once the router and the stable
version run (as init's "next:" lines say to start them); a healthy version is
promoted through the generated hooks, and a faulty one after it rolls back with
the promoted version still answering every request.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.demo.load import LoadGenerator

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent  # the venv's bin: safeship, as a user's PATH has it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(**env),
        check=False,
    )


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, f"{what} exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port}")


def _answer(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, int]]]:
    for binary in ("promtool", "amtool"):
        if shutil.which(binary) is None and os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"{binary} is not installed")
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    folder = tmp_path / "checkout"
    folder.mkdir()
    ports = {name: _free_port() for name in ("blue", "green", "listen", "admin")}
    yield folder, ports
    # Whatever the hooks left running in the slots.
    for pidfile in (folder / ".safeship" / "slots").glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), 9)


def test_init_then_alert_tests_check_and_rollouts_work(
    project: tuple[Path, dict[str, int]],
) -> None:
    folder, ports = project
    slots = f"127.0.0.1:{ports['blue']},127.0.0.1:{ports['green']}"
    init = _run(
        folder,
        "safeship",
        "init",
        "--router",
        "local",
        "--provider",
        "scrape",
        "--slot-addresses",
        slots,
        "-y",
    )
    assert init.returncode == 0, init.stderr
    assert "wrote safeship.yaml" in init.stdout
    assert not (folder / "deploy" / "kubernetes").exists()  # only what the setup uses

    for command in (
        ("safeship", "config", "validate"),
        ("safeship", "rules", "test"),
        ("safeship", "alertmanager", "test"),
        ("./.prometheus/validate-alerts.sh",),
        ("safeship", "rules", "generate", "--check"),
        ("safeship", "dashboards", "generate", "--check"),
    ):
        result = _run(folder, *command)
        assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"

    # init's next steps, as printed: the stable version's line verbatim, the router's
    # with free ports for the two it names.
    steps = [line.strip() for line in init.stdout.split("next:", 1)[1].splitlines()]
    stable_line = next(line for line in steps if line.startswith("mkdir -p .safeship/slots"))
    router_line = next(line for line in steps if line.startswith("safeship router serve"))
    started = subprocess.run(
        ["bash", "-c", stable_line], cwd=folder, env=_env(), timeout=30, check=False
    )
    assert started.returncode == 0
    slot_dir = folder / ".safeship" / "slots"
    router_args = shlex.split(
        router_line.removesuffix("&")
        .replace("127.0.0.1:8080", f"127.0.0.1:{ports['listen']}")
        .replace("127.0.0.1:8081", f"127.0.0.1:{ports['admin']}")
    )
    router = subprocess.Popen(
        router_args,
        cwd=folder,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    admin = {"SAFESHIP_ROUTER_ADMIN": f"http://127.0.0.1:{ports['admin']}"}
    front = f"http://127.0.0.1:{ports['listen']}/"
    try:
        _wait_listening(ports["blue"], None, "the stable version")
        assert (slot_dir / "blue.pid").read_text().strip().isdigit()
        _wait_listening(ports["admin"], router, "the router")
        with LoadGenerator(front, rps=200):
            checked = _run(folder, "safeship", "check", **admin)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "0 failed" in checked.stdout

            fast = {**admin, "CANARY_STEPS": "25,100", "CANARY_WAIT_TIME": "15s"}
            good = _run(
                folder, "safeship", "rollout", "--env", "production", "--version", "v2", **fast
            )
            assert good.returncode == 0, good.stdout + good.stderr
            assert "promoted" in good.stdout
            assert _answer(front) == "ok v2\n"

            bad = _run(
                folder,
                "safeship",
                "rollout",
                "--env",
                "production",
                "--version",
                "v3",
                SAMPLE_ERROR_RATE="0.3",
                **fast,
            )
            assert bad.returncode == 1, bad.stdout + bad.stderr
            assert "rolled_back" in bad.stdout
            # v2 answers everything; v3's slot was stopped by on-rollback.sh.
            assert {_answer(front) for _ in range(20)} == {"ok v2\n"}
            assert not (slot_dir / "blue.pid").exists()

            # Back into blue, where v1 (started by the printed line) and v3 ran.
            again = _run(
                folder, "safeship", "rollout", "--env", "production", "--version", "v4", **fast
            )
            assert again.returncode == 0, again.stdout + again.stderr
            assert {_answer(front) for _ in range(20)} == {"ok v4\n"}
    finally:
        router.terminate()
        router.wait(10)


@pytest.mark.parametrize("router", ["local", "nginx", "haproxy", "kubernetes"])
def test_every_router_gets_a_config_that_loads_and_only_its_files(
    tmp_path: Path, router: str
) -> None:
    provider = "prometheus" if router == "kubernetes" else "scrape"
    result = _run(
        tmp_path,
        "safeship",
        "init",
        "--router",
        router,
        "--provider",
        provider,
        "--service",
        "shop",
        "--env",
        "dev,prod-eu",
        "-y",
    )
    assert result.returncode == 0, result.stderr
    checked = _run(tmp_path, "safeship", "config", "validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (tmp_path / "deploy" / "kubernetes").exists() == (router == "kubernetes")
    assert (tmp_path / "deploy" / "on-rollback.sh").exists() == (router != "kubernetes")
    alerts = (tmp_path / ".prometheus" / "alerts.yml").read_text()
    assert "HighErrorRateProdEu" in alerts
    assert "HighErrorRateDev" in alerts
    assert "Staging" not in alerts
    tests = _run(tmp_path, "safeship", "rules", "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
