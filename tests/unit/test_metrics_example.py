"""The plan's metrics snippet runs as written and its /metrics shows what it recorded.

examples/metrics_api.py is the plan's usage (`initialize_metrics()`, `with
track_deployment('staging')`, `record_rollback(env, reason)`, ...) and the README
shows it verbatim. It runs here as a user would run it: a new process in an
empty working directory, so the default store `.safeship/history.db` is created
there (under /tmp), never in the repository. The plan serves on port 8001, which
another process may hold on a CI machine, so the test sets SAFESHIP_METRICS_PORT=0
(a free port) and reads the address the script prints.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import safeship
from safeship.config import DEFAULT_STORE_URL
from safeship.store import open_store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "metrics_api.py"


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README's "Deployment metrics" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n### Deployment metrics\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)


def samples(body: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called `name` whose labels include `labels`."""
    return [
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


@contextmanager
def interruptible(script: Path, cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`script` running in `cwd`, then stopped with Ctrl-C (SIGINT) as its user would stop it.

    Its stderr goes to `cwd/stderr.txt`. A shell that starts pytest in the
    background has it ignore SIGINT, and an ignored signal stays ignored in a
    child: the script would never see Ctrl-C. A handled one is reset to its
    default by exec, so SIGINT is handled while the child starts. A child that
    still does not stop is killed, never left running.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    with (cwd / "stderr.txt").open("w") as stderr:
        if ignored:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                [sys.executable, str(script)],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        finally:
            if ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        with process:
            try:
                yield process
            finally:
                process.send_signal(signal.SIGINT)
                try:
                    process.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    raise


def test_the_readme_shows_the_example_as_it_is() -> None:
    assert EXAMPLE.read_text() in readme_python_blocks()


def test_the_readmes_longer_forms_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = readme_python_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[1], "README.md", "exec"), {})
    assert capsys.readouterr().out == "production rollback rate: 100%\n"

    store = open_store(DEFAULT_STORE_URL)  # the same file, opened anew
    try:
        [deployment] = store.list_deployments()
        [smoke_test] = store.smoke_tests()
    finally:
        store.close()
    assert (deployment.service, deployment.environment, deployment.version) == (
        "checkout",
        "production",
        "v1.4.2",
    )
    assert (deployment.outcome, deployment.reason) == ("rolled_back", "high_latency")
    assert (smoke_test.deployment_id, smoke_test.name) == (deployment.id, "checkout-flow")


@pytest.mark.timeout(60)
def test_the_plan_snippet_runs_verbatim_and_serves_its_deployments(tmp_path: Path) -> None:
    repo_store = ROOT / ".safeship"
    repo_store_existed = repo_store.exists()
    env = {
        **os.environ,
        # The safeship under test, whatever an installed copy would give.
        "PYTHONPATH": str(Path(safeship.__file__).resolve().parents[1]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SAFESHIP_METRICS_PORT": "0",
    }
    with interruptible(EXAMPLE, tmp_path, env) as process:
        assert process.stdout is not None
        printed = [process.stdout.readline(), process.stdout.readline()]
        match = re.match(r"serving (http://\S+/metrics)", printed[1])
        assert match, f"{printed!r}; stderr: {(tmp_path / 'stderr.txt').read_text()}"
        with urllib.request.urlopen(match[1], timeout=5) as response:
            body = response.read().decode()
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()

    assert printed[0].startswith("success rate 50%, rollback rate 50%, 0.042 promotions per hour")
    assert samples(body, "deployment_total", environment="staging", status="success") == [1.0]
    assert samples(body, "deployment_total", environment="staging", status="rolled_back") == [1.0]
    assert samples(body, "deployment_rollback_total", reason="high_error_rate") == [1.0]
    assert samples(body, "smoke_test_total", result="passed") == [1.0]
    assert samples(body, "prometheus_query_total", result="success") == [1.0]
    assert samples(body, "prometheus_query_total", result="failed") == [1.0]
    # The rolled-back canary's series, the only one left for staging, reads 0.
    assert samples(body, "canary_traffic_percentage", environment="staging") == [0.0]

    assert (tmp_path / ".safeship" / "history.db").is_file()
    assert repo_store.exists() == repo_store_existed
