"""HaproxyRouter against a real HAProxy 2.6 in front of two tiny upstreams (blue, green)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from safeship.config import HaproxyRouterSettings
from safeship.routers.haproxy import HaproxyRouter

pytestmark = pytest.mark.integration


def haproxy_binary() -> str:
    """HAProxy lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if found is None:
        message = "haproxy is not installed (Debian package `haproxy`: apt-get install haproxy)"
        if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


class Upstream:
    """An HTTP server answering every GET with its own name."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Haproxy:
    url: str
    socket: Path
    state_file: Path

    def router(self) -> HaproxyRouter:
        return HaproxyRouter.from_settings(
            HaproxyRouterSettings(
                socket=str(self.socket), backend="app", state_file=str(self.state_file)
            )
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    binary = haproxy_binary()
    blue, green = Upstream("blue"), Upstream("green")
    # Unix socket paths are limited to ~108 bytes; tmp_path can be longer.
    sock_dir = Path(tempfile.mkdtemp(prefix="hap"))
    admin = sock_dir / "admin.sock"
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {admin} mode 600 level admin
    maxconn 256

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    server blue 127.0.0.1:{blue.port} weight 100
    server green 127.0.0.1:{green.port} weight 100
"""
    )
    log = (tmp_path / "haproxy.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(f"haproxy exited: {(tmp_path / 'haproxy.log').read_text()}")
            if admin.exists():
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"haproxy not ready: {(tmp_path / 'haproxy.log').read_text()}")
            time.sleep(0.02)
        print(f"haproxy ready in {time.monotonic() - started:.3f}s")
        yield Haproxy(f"http://127.0.0.1:{port}/", admin, tmp_path / "state" / "router.json")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        blue.close()
        green.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def count(url: str, n: int) -> Counter[str]:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return Counter(client.get(url).raise_for_status().text for _ in range(n))


def test_weights_steer_real_traffic(haproxy: Haproxy) -> None:
    router = haproxy.router()
    assert router.health().ok
    assert (router.stable_server, router.canary_server) == ("blue", "green")

    started = time.monotonic()
    router.set_weight(10)
    print(f"set_weight(10) confirmed in {time.monotonic() - started:.4f}s")
    assert router.get_weight() == 10
    seen = count(haproxy.url, 200)
    assert 15 <= seen["green"] <= 25, seen
    assert seen["blue"] + seen["green"] == 200

    router.set_weight(0)
    assert router.get_weight() == 0
    assert count(haproxy.url, 50) == Counter(blue=50)

    router.set_weight(30)
    router.promote()
    assert count(haproxy.url, 50) == Counter(green=50)
    assert json.loads(haproxy.state_file.read_text())["stable"] == "green"
    assert (router.stable_server, router.canary_server) == ("green", "blue")
    assert router.get_weight() == 0
    router.promote()  # a repeat changes nothing
    assert count(haproxy.url, 20) == Counter(green=20)

    # The next rollout's canary is blue.
    router.set_weight(50)
    assert count(haproxy.url, 100) == Counter(blue=50, green=50)
    router.rollback()
    assert count(haproxy.url, 20) == Counter(green=20)


def test_weight_changes_under_load_drop_no_request(haproxy: Haproxy) -> None:
    router = haproxy.router()
    router.set_weight(0)
    total, workers = 300, 10
    results: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(share: int) -> None:
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            for _ in range(share):
                try:
                    response = client.get(haproxy.url)
                    response.raise_for_status()
                    with lock:
                        results.append(response.text)
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                time.sleep(0.002)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(worker, total // workers) for _ in range(workers)]
        for weight in (10, 50, 100, 0):
            time.sleep(0.25)
            router.set_weight(weight)
            assert router.get_weight() == weight
        for future in futures:
            future.result()
    print(f"{total} requests under changing weights in {time.monotonic() - started:.2f}s")
    assert errors == []
    assert len(results) == total
    assert set(results) == {"blue", "green"}  # the canary really got traffic
    assert router.get_weight() == 0
    assert count(haproxy.url, 20) == Counter(blue=20)
