"""NginxRouter against a real nginx (NginxServer) in front of two tiny upstreams."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from safeship.demo.load import TRACK_HEADER, LoadGenerator
from safeship.demo.nginx_server import NGINX_PACKAGE, NginxServer, find_nginx
from safeship.errors import RouterError
from safeship.routers.nginx import NginxRouter

pytestmark = pytest.mark.integration


def need_nginx() -> None:
    """nginx lives in /usr/sbin, which is not on every user's PATH: find_nginx looks there."""
    if find_nginx() is not None:
        return
    message = (
        f"nginx is not installed (Debian package `{NGINX_PACKAGE}`: "
        f"apt-get install {NGINX_PACKAGE})"
    )
    if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


class Upstream:
    """An HTTP/1.1 server answering every GET with its slot name, also in X-Safeship-Track."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header(TRACK_HEADER, name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nginx() -> Iterator[NginxServer]:
    need_nginx()
    blue, green = Upstream("blue"), Upstream("green")
    try:
        started = time.monotonic()
        with NginxServer({"blue": blue.address, "green": green.address}) as server:
            print(f"nginx ready in {time.monotonic() - started:.3f}s")
            yield server
    finally:
        blue.close()
        green.close()


@pytest.fixture
def router(nginx: NginxServer) -> Iterator[NginxRouter]:
    router = nginx.router()
    yield router
    router.close()


def count(url: str, n: int) -> Counter[str]:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return Counter(client.get(url).raise_for_status().text for _ in range(n))


def generation_in(include: str) -> str:
    match = re.search(r'"generation":"(\w+)"', include)
    assert match is not None, include
    return match.group(1)


def test_weights_steer_real_traffic(nginx: NginxServer, router: NginxRouter) -> None:
    assert router.health().ok
    assert router.get_weight() == 0  # NginxServer starts stable 100 / canary 0
    assert count(nginx.url, 20) == Counter(blue=20)

    started = time.monotonic()
    router.set_weight(10)
    print(f"set_weight(10) tested, reloaded and confirmed in {time.monotonic() - started:.3f}s")
    assert router.get_weight() == 10
    seen = count(nginx.url, 200)
    assert 15 <= seen["green"] <= 25, seen
    assert seen["blue"] + seen["green"] == 200

    router.set_weight(50)
    seen = count(nginx.url, 200)
    assert 90 <= seen["green"] <= 110, seen

    router.set_weight(100)
    assert router.get_weight() == 100
    assert count(nginx.url, 50) == Counter(green=50)
    router.set_weight(0)
    assert router.get_weight() == 0
    assert count(nginx.url, 50) == Counter(blue=50)


def test_promote_swaps_slots(nginx: NginxServer, router: NginxRouter) -> None:
    router.set_weight(30)
    router.promote("green")
    assert count(nginx.url, 50) == Counter(green=50)
    assert json.loads(nginx.state_file.read_text()) == {"stable": "green"}
    assert (router.slots().stable.name, router.slots().canary.name) == ("green", "blue")
    assert router.get_weight() == 0
    router.promote("green")  # a repeat changes nothing
    assert count(nginx.url, 20) == Counter(green=20)

    router.set_weight(50)  # the next rollout's canary is blue
    assert count(nginx.url, 100) == Counter(blue=50, green=50)
    router.promote(router.slots().stable.name)  # a rollback
    assert count(nginx.url, 20) == Counter(green=20)


def test_refused_config_keeps_old_file_and_traffic(nginx: NginxServer, router: NginxRouter) -> None:
    router.set_weight(10)
    before = nginx.include_file.read_text()
    # A typo in a slot's address: nginx -t refuses the port, naming file and line.
    slots = dict(nginx.slots, green="127.0.0.1:99999")
    typo = nginx.router(slots=slots)
    try:
        with pytest.raises(RouterError) as caught:
            typo.set_weight(50)
    finally:
        typo.close()
    message = str(caught.value)
    print(message)
    assert re.search(
        rf'\[emerg\] invalid port in upstream "127.0.0.1:99999" in {nginx.include_file}:\d+',
        message,
    )
    assert "restored to its previous content" in message
    assert nginx.include_file.read_text() == before
    assert router.get_weight() == 10
    seen = count(nginx.url, 100)
    assert 5 <= seen["green"] <= 15, seen


def test_broken_main_config_is_refused(nginx: NginxServer, router: NginxRouter) -> None:
    router.set_weight(10)
    before = nginx.include_file.read_text()
    good = nginx.config_file.read_text()
    nginx.config_file.write_text(good.replace("worker_processes", "worker_processess"))
    with pytest.raises(RouterError, match=r'unknown directive "worker_processess"'):
        router.set_weight(20)
    assert nginx.include_file.read_text() == before
    nginx.config_file.write_text(good)
    router.set_weight(20)
    assert router.get_weight() == 20


def test_reload_is_confirmed_by_generation(nginx: NginxServer, router: NginxRouter) -> None:
    router.set_weight(10)
    status = httpx.get(router.status_url, trust_env=False).json()
    assert status["generation"] == generation_in(nginx.include_file.read_text())
    before = nginx.include_file.read_text()

    # nginx -t does not bind sockets, so a status port taken by someone else
    # passes the test; the master then keeps its old configuration, and only
    # the generation read back tells.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        moved = nginx.router(status_listen=busy, timeout=1.0)
        try:
            with pytest.raises(RouterError, match=r"did not report generation \w+ within 1s"):
                moved.set_weight(50)
        finally:
            moved.close()
    assert "Address already in use" in nginx.error_log.read_text()
    assert nginx.include_file.read_text() == before
    assert router.get_weight() == 10


def test_reloads_under_load_fail_no_request(nginx: NginxServer, router: NginxRouter) -> None:
    started = time.monotonic()
    with LoadGenerator(nginx.url, rps=200, concurrency=32) as load:
        for weight in (10, 50, 90, 30, 100, 0):
            time.sleep(0.3)
            router.set_weight(weight)
        time.sleep(0.3)
    stats = load.stats()
    elapsed = time.monotonic() - started
    print(f"{stats.sent} requests in {elapsed:.2f}s across 6 reloads: {stats.as_dict()}")
    assert stats.failed == 0
    assert stats.sent >= 150 * elapsed * 0.9
    assert stats.ok == stats.sent
    assert set(stats.by_track) == {"blue", "green"}
