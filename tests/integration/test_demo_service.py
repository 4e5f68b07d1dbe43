"""The demo service, the load generator and the scrape provider working together on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from safeship.demo.load import LoadGenerator
from safeship.demo.service import LATENCY_BUCKETS, ServiceProcess, start_service
from safeship.providers.interface import VersionSample, Window
from safeship.providers.scrape import ScrapeProvider

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """A healthy stable and a canary failing 20% of requests with 100 ms extra latency."""
    with ExitStack() as stack:
        stable = stack.enter_context(
            start_service("127.0.0.1:0", "checkout", "test", "1.0.0", "stable")
        )
        canary = stack.enter_context(
            start_service(
                "127.0.0.1:0",
                "checkout",
                "test",
                "1.1.0",
                "canary",
                error_rate=0.2,
                latency_ms=100,
            )
        )
        yield stable, canary


def share_at_or_below(sample: VersionSample, le: float) -> float:
    return dict(sample.latency_buckets)[le] / sample.requests


def test_scrape_provider_sees_the_canary_fail_and_slow_down(
    services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    stable, canary = services
    provider = ScrapeProvider(canary.url, stable.metrics_url, match={"service": "checkout"})
    try:
        opened = time.time()
        provider.window_opened(opened)
        with (
            LoadGenerator(stable.url + "/", 100) as to_stable,
            LoadGenerator(canary.url + "/", 100) as to_canary,
        ):
            time.sleep(2.0)
        m = provider.measure(Window(opened, time.time()))
    finally:
        provider.close()

    stable_stats, canary_stats = to_stable.stats(), to_canary.stats()
    for stats in (stable_stats, canary_stats):
        assert stats.skipped == 0
        assert 180 <= stats.sent <= 220
        assert stats.ok + stats.failed == stats.sent
        assert dict(stats.by_track) == {"unknown": stats.sent}
    assert stable_stats.failed == 0

    # Every answered request was counted by the service before it answered.
    assert m.canary.requests == canary_stats.sent
    assert m.baseline.requests == stable_stats.sent
    assert m.canary.errors == canary_stats.failed
    assert m.canary.error_ratio == pytest.approx(0.2, abs=0.08)
    assert m.baseline.error_ratio == 0

    assert [le for le, _ in m.canary.latency_buckets] == [*LATENCY_BUCKETS, float("inf")]
    assert m.canary.latency_buckets[-1][1] == m.canary.requests
    assert share_at_or_below(m.baseline, 0.05) >= 0.9
    assert share_at_or_below(m.canary, 0.1) <= 0.1
    assert share_at_or_below(m.canary, 0.25) >= 0.9
    assert m.queries["canary"].startswith(f"scrape {canary.metrics_url} ")


def test_metrics_use_the_names_the_queries_expect(
    services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    _, canary = services
    with httpx.Client() as client:
        for _ in range(20):
            client.get(canary.url + "/")
        response = client.get(canary.metrics_url)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    service = 'environment="test",service="checkout"'
    version = 'track="canary",version="1.1.0"'
    assert "# TYPE http_requests_total counter" in text
    for status in ("200", "500"):
        assert f'http_requests_total{{{service},status="{status}",{version}}}' in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    for le in ["0.005", "0.075", "0.3", "0.75", "1.0", "2.5", "10.0", "+Inf"]:
        assert f'http_request_duration_seconds_bucket{{environment="test",le="{le}",' in text
    assert f"http_request_duration_seconds_count{{{service},{version}}}" in text
    assert "_created" not in text


def test_health_checks_and_other_paths(services: tuple[ServiceProcess, ServiceProcess]) -> None:
    stable, _ = services
    with httpx.Client(base_url=stable.url) as client:
        before = client.get("/metrics").text.count('status="200"')
        health = client.get("/healthz")
        page = client.get("/some/page?q=1")

    assert (health.status_code, health.text) == (200, "ok")
    assert (page.status_code, page.text) == (200, "ok 1.0.0\n")
    assert before == 1


def test_stop_terminates_cleanly_and_can_be_repeated() -> None:
    service = start_service("127.0.0.1:0", "checkout", "test", "2.0.0", "stable")
    with service:
        assert httpx.get(service.url + "/healthz").status_code == 200
    assert service.returncode == 0
    assert service.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(service.url + "/healthz")


def test_a_service_that_cannot_start_reports_why(
    services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    stable, _ = services
    with pytest.raises(RuntimeError, match=r"exited with code 1: .*address already in use"):
        start_service(stable.listen, "checkout", "test", "1.0.0", "stable")


def test_load_generator_skips_what_it_cannot_send_on_time(
    services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    _, canary = services
    # One request at a time, each taking ~120 ms, cannot keep up with 50 per second.
    with LoadGenerator(canary.url + "/", 50, concurrency=1) as load:
        time.sleep(1.0)
    stats = load.stats()

    assert 3 <= stats.sent <= 12
    assert stats.skipped >= 35
    assert stats.ok + stats.failed == stats.sent


def test_load_generator_counts_refused_connections_as_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now that the probe is closed.
    with LoadGenerator(f"http://127.0.0.1:{port}/", 50) as load:
        time.sleep(0.3)
    stats = load.stats()

    assert stats.sent > 0
    assert stats.failed == stats.sent
    assert stats.ok == 0
    assert dict(stats.by_track) == {}
