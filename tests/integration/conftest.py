"""Real servers for integration tests, on free loopback ports with temporary storage.

A test that needs a binary skips with the Debian package to install, except
under SAFESHIP_REQUIRE_INTEGRATION=1 (set by .ci/run), where a missing binary
fails the test: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from safeship.demo.monitoring import PrometheusServer, PushgatewayServer


def need_binary(name: str, package: str, found: str | None = None) -> None:
    """Skip (or fail under SAFESHIP_REQUIRE_INTEGRATION=1) unless `name` is installed."""
    if (found or shutil.which(name)) is not None:
        return
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
    from safeship.demo.haproxy_server import find_haproxy

    need_binary("haproxy", "haproxy", find_haproxy())


@pytest.fixture(scope="session")
def nginx_installed() -> None:
    from safeship.demo.nginx_server import find_nginx

    need_binary("nginx", "nginx-light", find_nginx())


@pytest.fixture
def pushgateway() -> Iterator[PushgatewayServer]:
    need_binary("prometheus-pushgateway", "prometheus-pushgateway")
    with PushgatewayServer() as server:
        yield server
