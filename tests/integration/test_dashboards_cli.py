"""`safeship dashboards push | versions | rollback` as a subprocess against GrafanaDouble
over real HTTP, with a temporary history store and dashboards directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safeship.cli.main import cli
from safeship.store import open_store
from safeship.testing_grafana import GrafanaDouble

pytestmark = pytest.mark.integration

TOKEN = "glsa_CANARY_d4shb0ards_token_0b9e77"
# Until the group is registered in safeship.cli.main, run the same `main` with it added.
_SHIM = (
    "import sys\n"
    "from safeship.cli.main import cli, main\n"
    "from safeship.cli.dashboards_cmd import dashboards\n"
    "if 'dashboards' not in cli.commands:\n"
    "    cli.add_command(dashboards)\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
_PREFIX = ["-m", "safeship"] if "dashboards" in cli.commands else ["-c", _SHIM]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    root: Path
    grafana: GrafanaDouble
    outputs: list[str]

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'history.db'}"

    def run(self, *args: str, url: str | None = None, token: str = TOKEN) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFANA_", "SAFESHIP_"))}
        env.update(
            SAFESHIP_CONFIG=str(self.root / "safeship.yaml"),
            SAFESHIP_STORE_URL=self.store_url,
            GRAFANA_URL=self.grafana.url if url is None else url,
            GRAFANA_API_KEY=token,
        )
        env.pop("GITHUB_SHA", None)
        done = subprocess.run(
            [sys.executable, *_PREFIX, "dashboards", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.outputs.append(done.stdout + done.stderr)
        return Result(done.returncode, done.stdout, done.stderr)

    def write(self, uid: str, **extra: Any) -> None:
        data = {
            "uid": uid,
            "title": f"Board {uid}",
            "panels": [],
            "tags": ["safeship"],
            # What Grafana's dashboard schema requires of every dashboard push accepts.
            "schemaVersion": 39,
            "templating": {"list": []},
            "annotations": {"list": []},
            **extra,
        }
        (self.root / "dashboards" / f"{uid}.json").write_text(json.dumps(data, indent=2))

    def records(self, deployment_id: str) -> list[tuple[str, int | None, int, str]]:
        store = open_store(self.store_url)
        try:
            return [
                (r.uid, r.version_before, r.version_after, r.action)
                for r in store.dashboard_versions(deployment_id)
            ]
        finally:
            store.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    (tmp_path / "safeship.yaml").write_text(
        "service: checkout\ngrafana:\n  folder_uid: safeship\n  retries: 2\n  timeout: 2\n"
    )
    (tmp_path / "dashboards").mkdir()
    with GrafanaDouble(token=TOKEN, version="12.0", page_size=2) as grafana:
        proj = Project(tmp_path, grafana, [])
        for uid in ("alpha", "beta", "gamma"):
            proj.write(uid)
        yield proj
    # Token redaction: every command any test ran, successes and failures alike.
    for output in proj.outputs:
        assert TOKEN not in output


def _unversioned(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("id", "version")}


def test_push_records_versions_second_push_is_a_noop_and_rollback_restores(
    project: Project,
) -> None:
    first = project.run("push", "--deployment-id", "D1", "--commit", "abc123")
    assert first.code == 0, first.output
    assert sorted(project.grafana.dashboards) == ["alpha", "beta", "gamma"]
    assert project.records("D1") == [(u, None, 1, "push") for u in ("alpha", "beta", "gamma")]
    message = project.grafana.dashboards["alpha"]["versions"][0]["message"]
    assert message == "safeship deployment D1 (commit abc123)"

    again = project.run("push", "--deployment-id", "D2")
    assert again.code == 0, again.output
    assert again.stdout.count("unchanged") == 3
    assert project.records("D2") == []
    assert project.grafana.version_numbers("alpha") == [1]

    original = project.grafana.current("alpha")
    project.write("alpha", description="changed by D3")
    changed = project.run("push", "--deployment-id", "D3")
    assert changed.code == 0, changed.output
    assert project.records("D3") == [("alpha", 1, 2, "push")]

    rolled = project.run("rollback", "--deployment", "D3")
    assert rolled.code == 0, rolled.output
    assert project.grafana.version_numbers("alpha") == [1, 2, 3]
    assert _unversioned(project.grafana.version_data("alpha", 3)) == _unversioned(original)
    assert project.records("D3")[-1] == ("alpha", 2, 3, "rollback")

    listed = project.run("versions", "alpha", "--json")
    assert listed.code == 0, listed.output
    versions = json.loads(listed.stdout)["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]  # over two pages of two
    assert versions[0]["restored_from"] == 1
    plain = project.run("versions", "alpha")
    assert plain.code == 0
    assert "safeship deployment D3" in plain.stdout

    manual = project.run("rollback", "--uid", "alpha", "--to-version", "2")
    assert manual.code == 0, manual.output
    assert project.grafana.current("alpha")["description"] == "changed by D3"


def test_a_dashboard_without_uid_fails_alone(project: Project) -> None:
    bad = project.root / "dashboards" / "broken.json"
    bad.write_text(json.dumps({"title": "No uid", "panels": []}))
    result = project.run("push", "--deployment-id", "D1")
    assert result.code == 1
    assert "broken.json" in result.stderr
    assert "uid" in result.stderr
    assert sorted(project.grafana.dashboards) == ["alpha", "beta", "gamma"]
    assert len(project.records("D1")) == 3


def test_a_dashboard_grafanas_schema_rejects_is_named_and_never_sent(project: Project) -> None:
    panel = {
        "id": 3,
        "type": "timeseries",
        "title": "Latency",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 24, "x": 0, "y": 0},
        "options": {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [{"expr": "up", "refId": "A"}],
    }
    datasource = {"name": "datasource", "type": "datasource", "query": "prometheus"}
    project.write("delta", panels=[panel], templating={"list": [{**datasource, "current": {}}]})
    result = project.run("push", "--deployment-id", "D1")
    assert result.code == 1
    where = f"{Path('dashboards') / 'delta.json'}"
    assert (
        f"{where}: panel 'Latency' (id 3): options.legend: 'showLegend' is a required property"
    ) in result.stderr
    assert f"{where}: variable 'datasource': current: 'text' is a required property" in (
        result.stderr
    )
    assert sorted(project.grafana.dashboards) == ["alpha", "beta", "gamma"]
    assert not [path for _, path in project.grafana.requests if "delta" in path]
    assert len(project.records("D1")) == 3


def test_invalid_json_is_named_with_its_line(project: Project) -> None:
    (project.root / "dashboards" / "typo.json").write_text('{\n  "uid": "t",\n  "title": ,\n}')
    result = project.run("push")
    assert result.code == 1
    assert "typo.json:3:" in result.stderr
    assert "not valid JSON" in result.stderr


def test_a_failing_grafana_is_retried_then_named_in_a_clear_error(project: Project) -> None:
    project.grafana.health_status = 503
    failing = project.run("push")
    assert failing.code == 3
    assert f"Grafana at {project.grafana.url}" in failing.stderr
    # retries: 2 in safeship.yaml, so three attempts
    assert project.grafana.requests.count(("GET", "/api/health")) == 3

    down = GrafanaDouble(token=TOKEN).start()
    url = down.url
    down.stop()
    for args in (["push"], ["versions", "alpha"], ["rollback", "--deployment", "D1"]):
        result = project.run(*args, url=url)
        assert result.code == 3, result.output
        assert f"Grafana at {url} is unreachable" in result.stderr


def test_a_refused_token_is_a_clear_error_without_the_token(project: Project) -> None:
    wrong = "glsa_CANARY_wrong_token_value_2c1d"
    result = project.run("push", token=wrong)
    assert result.code == 1
    assert "HTTP 401" in result.stderr
    assert wrong not in result.output
    versions = project.run("versions", "alpha", token=wrong)
    assert versions.code == 1
    assert wrong not in versions.output


def test_without_url_or_token_push_and_rollback_skip_unless_strict(project: Project) -> None:
    skipped = project.run("push", url="")
    assert skipped.code == 0
    assert "warning: dashboards skipped: no Grafana URL" in skipped.stderr
    assert project.run("push", "--strict", url="").code == 3
    no_token = project.run("rollback", "--deployment", "D1", token="")
    assert no_token.code == 0
    assert "no Grafana token" in no_token.stderr
    assert project.run("rollback", "--strict", "--deployment", "D1", token="").code == 3
    assert project.grafana.requests == []


def test_rollback_needs_a_deployment_or_a_uid_and_version(project: Project) -> None:
    assert project.run("rollback").code == 2
    assert project.run("rollback", "--uid", "alpha").code == 2
    assert (
        project.run("rollback", "--deployment", "D1", "--uid", "a", "--to-version", "1").code == 2
    )
