"""Fixtures shared by every suite: the real binaries tests start, and history stores.

A test that needs a binary skips with the Debian package to install, except
under SAFESHIP_REQUIRE_INTEGRATION=1 (set by .ci/run), where a missing binary
fails the test: CI must never pass by skipping.

`store_url` runs a store test once per database: on a fresh SQLite file, and on a fresh
database of one PostgreSQL server started for the whole session (a database per test,
so tests never see each other's rows; creating one takes ~20 ms). The PostgreSQL runs
are integration tests: without PostgreSQL they skip, naming the Debian package, except
under SAFESHIP_REQUIRE_INTEGRATION=1, where they fail (CI must never pass by skipping).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from tests import specs

from safeship.demo.haproxy_server import find_haproxy
from safeship.demo.monitoring import PrometheusServer, PushgatewayServer
from safeship.demo.nginx_server import NGINX_PACKAGE, find_nginx
from safeship.demo.postgres_server import POSTGRES_PACKAGE, PostgresServer, find_postgres_bin
from safeship.testing_grafana import GrafanaDouble
from safeship.testing_kubernetes import KubernetesApiDouble

_database_numbers = itertools.count(1)

# Property tests are bounded and derandomized in `make test` (a run is repeatable, with no
# timing on a noisy machine); HYPOTHESIS_PROFILE=deep explores much further.
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile("deep", max_examples=5000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def need_binary(name: str, package: str, found: str | None = None) -> str:
    """The binary's path; skip (or fail under SAFESHIP_REQUIRE_INTEGRATION=1) without it."""
    path = found or shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package `{package}`: apt-get install {package})"
    if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def prometheus_installed() -> None:
    """For tests that start Prometheus themselves (the demo sandbox does)."""
    need_binary("prometheus", "prometheus")


@pytest.fixture
def prometheus(prometheus_installed: None) -> Iterator[PrometheusServer]:
    """Prometheus 2.42 scraping every second whatever a test adds with add_targets()."""
    with PrometheusServer(scrape_interval=1.0) as server:
        yield server


@pytest.fixture(scope="session")
def alertmanager_installed() -> None:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def haproxy_installed() -> None:
    need_binary("haproxy", "haproxy", find_haproxy())


@pytest.fixture(scope="session")
def nginx_installed() -> None:
    need_binary("nginx", NGINX_PACKAGE, find_nginx())


@pytest.fixture(scope="session")
def pushgateway_installed() -> None:
    need_binary("prometheus-pushgateway", "prometheus-pushgateway")


@pytest.fixture
def pushgateway(pushgateway_installed: None) -> Iterator[PushgatewayServer]:
    with PushgatewayServer() as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium's path (Debian `chromium`)."""
    return need_binary("chromium", "chromium", shutil.which("chromium-browser"))


@pytest.fixture(scope="session")
def postgres_installed() -> None:
    found = find_postgres_bin()
    need_binary("postgres", POSTGRES_PACKAGE, str(found) if found else None)


@pytest.fixture(scope="session")
def postgres_server(postgres_installed: None) -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session; tests take databases from it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgresql_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of the session's PostgreSQL."""
    return postgres_server.create_database(f"t_{next(_database_numbers)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'history.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty history-store database: a SQLite file, or a PostgreSQL database.

    Dispatches to `sqlite_url` / `postgresql_url`, which a test with backends of its own
    (an in-memory store too) can request the same way.
    """
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(autouse=True)
def _doubles_speak_as_the_specs_say(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every request a Grafana or Kubernetes double accepts, and every reply it serves,
    is checked against the project's own schema (tests/specs.py); a test whose traffic
    breaks one fails at its end, naming the field. Tests that seed what the schema
    refuses, on purpose, say so with `@pytest.mark.off_spec`."""
    problems: list[str] = []
    kubernetes = KubernetesApiDouble.handle
    grafana = GrafanaDouble.handle

    def kubernetes_handle(
        self: KubernetesApiDouble, method: str, path: str, auth: str, content_type: str, raw: bytes
    ) -> tuple[int, Any]:
        status, reply = kubernetes(self, method, path, auth, content_type, raw)
        if method == "PUT" and status == 200:
            with contextlib.suppress(ValueError):
                problems.extend(specs.kubernetes_problems(json.loads(raw), f"PUT {path}:"))
        if status == 200:
            problems.extend(specs.kubernetes_problems(reply, f"{method} {path} reply:"))
        return status, reply

    def grafana_handle(
        self: GrafanaDouble,
        method: str,
        path: str,
        query: dict[str, list[str]],
        auth: str,
        body: Any,
    ) -> tuple[int, Any]:
        status, reply = grafana(self, method, path, query, auth, body)
        if status not in (401, 403):  # refused before it was read
            problems.extend(specs.grafana_problems(method, path, body, status, reply))
        return status, reply

    monkeypatch.setattr(KubernetesApiDouble, "handle", kubernetes_handle)
    monkeypatch.setattr(GrafanaDouble, "handle", grafana_handle)
    yield
    if request.node.get_closest_marker("off_spec"):
        return
    assert not problems, "traffic the specs refuse:\n" + "\n".join(sorted(set(problems))[:20])
