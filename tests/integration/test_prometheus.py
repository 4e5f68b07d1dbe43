"""Against a real Prometheus 2.42: the client, analysis through PromQL, and outages."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from safeship.config import CanaryStrategy, Limits, PrometheusSettings
from safeship.demo.monitoring import PrometheusServer
from safeship.demo.sandbox import Fault, Scenario, sandbox
from safeship.demo.service import start_service
from safeship.prometheus.client import PrometheusClient, PrometheusError, PromQLError
from safeship.rollout.controller import RolloutEvent
from safeship.rollout.machine import Outcome, Reason

pytestmark = pytest.mark.integration

FAST = CanaryStrategy(hold=6.0, warmup=1.0, interval=1.0, min_requests=40)


def test_client_against_real_prometheus(prometheus: PrometheusServer) -> None:
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as service,
        PrometheusClient(PrometheusSettings(url=prometheus.url, retries=0)) as client,
    ):
        prometheus.add_targets(service.url.removeprefix("http://"))
        prometheus.wait_for_targets(service.url.removeprefix("http://"))
        assert client.healthy()
        assert client.ready()
        assert client.buildinfo()["version"].startswith("2.")
        assert client.format_query("sum(rate(x[5m]))by(a)") == "sum by (a) (rate(x[5m]))"
        with pytest.raises(PromQLError) as info:
            client.query("sum(rate(x[5m]")
        assert info.value.error_type == "bad_data"
        assert client.query('up{job="nope"}').value() is None
        assert client.query('up{job="safeship"}').value() == 1
        assert client.targets()[0]["scrapeInterval"] == "1s"
        now = time.time()
        [(labels, points)] = client.query_range('up{job="safeship"}', now - 3, now, 1)
        assert labels["job"] == "safeship"
        assert points
        assert all(value == 1 for _, value in points)
        assert client.series('up{job="safeship"}')[0]["instance"] == service.url[7:]
        # The sample service's counter exists only after its first request.
        httpx.get(service.url, timeout=5)
        deadline = time.monotonic() + 10
        while not client.metadata("http_requests_total") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert client.metadata("http_requests_total")["http_requests_total"][0]["type"] == "counter"


@pytest.mark.usefixtures("prometheus_installed")
def test_rollout_through_prometheus_promotes_healthy_and_rolls_back_faulty(
    tmp_path: Path,
) -> None:
    with sandbox(
        rps=150,
        store_url=f"sqlite:///{tmp_path / 'h.db'}",
        strategy=FAST,
        metrics_source="prometheus",
    ) as box:
        healthy = box.run(Scenario("v2", Fault()), on_event=None)
        faulty = box.run(Scenario("v3", Fault(error_rate=0.1)), on_event=None)
        assert healthy.state.outcome is Outcome.PROMOTED, healthy.state.detail
        assert (faulty.state.outcome, faulty.state.reason) == (
            Outcome.ROLLED_BACK,
            Reason.HIGH_ERROR_RATE,
        )
        assert box.router.get_weight() == 0
        rollback = next(d for d in faulty.story["decisions"] if d["action"] == "rollback")
        queries = rollback["inputs"]["verdict"]["queries"]
        # Selected by the versions the slots hold: v3, against v2 promoted before it.
        assert 'version="v3"' in queries["canary.errors"]
        assert 'version="v2"' in queries["baseline.errors"]
        assert "increase(http_requests_total{" in queries["canary.requests"]


@pytest.mark.usefixtures("prometheus_installed")
def test_prometheus_killed_mid_analysis_rolls_back_and_never_promotes(tmp_path: Path) -> None:
    strategy = CanaryStrategy(
        hold=30.0, warmup=1.0, interval=1.0, min_requests=40, limits=Limits(consecutive_errors=3)
    )
    with sandbox(
        rps=150,
        store_url=f"sqlite:///{tmp_path / 'h.db'}",
        strategy=strategy,
        metrics_source="prometheus",
    ) as box:
        assert box.prometheus is not None
        server = box.prometheus
        verdicts: list[str] = []

        def kill_after_first_pass(event: RolloutEvent) -> None:
            if event.verdict is not None:
                verdicts.append(event.verdict.result.value)
                if event.verdict.result.value == "pass" and server.returncode is None:
                    server.kill()

        result = box.run(Scenario("v2", Fault()), on_event=kill_after_first_pass)
        assert (result.state.outcome, result.state.reason) == (
            Outcome.ROLLED_BACK,
            Reason.PROVIDER_ERROR,
        )
        assert "pass" in verdicts
        assert verdicts[-3:] == ["error", "error", "error"]
        assert box.router.get_weight() == 0
        errors = [d for d in result.story["decisions"] if d["result"] == "error"]
        assert "unreachable" in errors[-1]["reason"]


class StubPrometheus(http.server.BaseHTTPRequestHandler):
    """Answers like a broken Prometheus (or a proxy in front of one) would."""

    behaviour: Callable[[StubPrometheus], None]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).behaviour(self)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[StubPrometheus], None]], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(behaviour: Callable[[StubPrometheus], None]) -> str:
        handler = type("Handler", (StubPrometheus,), {"behaviour": staticmethod(behaviour)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def unavailable(handler: StubPrometheus) -> None:
    handler.send_response(503)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()
    handler.wfile.write(b"Service Unavailable")


def garbage(handler: StubPrometheus) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    handler.wfile.write(b"<html>login</html>")


def slow(handler: StubPrometheus) -> None:
    time.sleep(2)
    garbage(handler)


@pytest.mark.parametrize(
    ("behaviour", "kind", "text"),
    [(unavailable, "http", "HTTP 503"), (garbage, "http", "not JSON"), (slow, "timeout", "0.5s")],
)
def test_broken_answers_are_classified(
    stub: Callable[[Callable[[StubPrometheus], None]], str],
    behaviour: Callable[[StubPrometheus], None],
    kind: str,
    text: str,
) -> None:
    url = stub(behaviour)
    settings = PrometheusSettings(url=url, retries=0, timeout=0.5)
    with PrometheusClient(settings) as client, pytest.raises(PrometheusError) as info:
        client.query("up")
    assert info.value.kind == kind
    assert text in str(info.value)
