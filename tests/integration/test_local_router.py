"""The local proxy as a real process between two real upstreams on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import itertools
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from safeship.child import start_child
from safeship.errors import RouterError
from safeship.routers.local import LocalProxyProcess, LocalRouter, start_local_proxy

pytestmark = pytest.mark.integration


class Upstream(BaseHTTPRequestHandler):
    """Answers every request with its server's name and what it received."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, each response waits
    # for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: NamedServer

    def answer(self) -> None:
        if self.path == "/big":
            self.stream_big_body()
            return
        length = int(self.headers.get("Content-Length", 0))
        body = json.dumps(
            {
                "name": self.server.name,
                "method": self.command,
                "path": self.path,
                "body": self.rfile.read(length).decode(errors="replace"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", self.server.name)
        self.end_headers()
        self.wfile.write(body)

    def stream_big_body(self) -> None:
        """64 MB, slowly: a client can leave in the middle of it."""
        self.send_response(200)
        self.send_header("Content-Length", str(64 * 1024 * 1024))
        self.end_headers()
        try:
            for _ in range(1024):
                self.wfile.write(b"x" * 65536)
                time.sleep(0.002)
        except OSError:
            pass  # the proxy let go: its client left

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest output is for failures."""


class NamedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), Upstream)
        self.name = name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    servers = [NamedServer("stable"), NamedServer("canary")]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    yield {server.name: server.url for server in servers}
    for server, thread in zip(servers, threads, strict=True):
        server.shutdown()
        server.server_close()
        thread.join()


def start(
    upstreams: dict[str, str], weight: int = 0, state_file: Path | None = None
) -> LocalProxyProcess:
    """A proxy on ports of its own choosing, so parallel test runs never collide."""
    return start_local_proxy(
        "127.0.0.1:0",
        "127.0.0.1:0",
        upstreams["stable"],
        upstreams["canary"],
        weight=weight,
        state_file=state_file,
    )


@pytest.fixture
def proxy(upstreams: dict[str, str]) -> Iterator[LocalProxyProcess]:
    with start(upstreams) as process:
        yield process


@pytest.fixture
def router(proxy: LocalProxyProcess) -> Iterator[LocalRouter]:
    router = LocalRouter(proxy.admin_url)
    yield router
    router.close()


def send(url: str, count: int) -> Counter[str]:
    """Send `count` sequential requests; count which upstream answered each."""
    answered: Counter[str] = Counter()
    with httpx.Client(base_url=url, trust_env=False) as client:
        for _ in range(count):
            response = client.get("/")
            assert response.status_code == 200
            assert response.headers["X-Safeship-Track"] == response.json()["name"]
            answered[response.json()["name"]] += 1
    return answered


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("weight", [0, 10, 33, 100])
def test_weight_sends_exactly_that_many_of_100_requests_to_canary(
    proxy: LocalProxyProcess, router: LocalRouter, weight: int
) -> None:
    router.set_weight(weight)

    answered = send(proxy.url, 100)

    assert answered["canary"] == weight
    assert answered["stable"] == 100 - weight


def test_weight_survives_the_controller_client(proxy: LocalProxyProcess) -> None:
    first = LocalRouter(proxy.admin_url)
    first.set_weight(25)
    first.close()

    second = LocalRouter(proxy.admin_url)
    try:
        assert second.get_weight() == 25
        assert second.health().ok
    finally:
        second.close()
    assert send(proxy.url, 100)["canary"] == 25


def test_weights_endpoint_counts_requests(proxy: LocalProxyProcess, router: LocalRouter) -> None:
    router.set_weight(20)
    send(proxy.url, 50)

    weights = httpx.get(f"{proxy.admin_url}/weights", trust_env=False).json()

    assert weights["canary_weight"] == 20
    assert weights["requests"] == {"stable": 40, "canary": 10}
    assert weights["upstream_errors"] == {"stable": 0, "canary": 0}


def test_restarted_proxy_keeps_weight_and_upstreams_from_state_file(
    upstreams: dict[str, str], tmp_path: Path
) -> None:
    state_file = tmp_path / "router.json"
    moved = {"canary": dead_url()}
    with start(upstreams, weight=5, state_file=state_file) as first:
        assert json.loads(state_file.read_text())["canary_weight"] == 5
        httpx.put(f"{first.admin_url}/upstreams", json=moved, trust_env=False)
        httpx.put(f"{first.admin_url}/weights", json={"canary_weight": 40}, trust_env=False)

    expected = {"canary_weight": 40, "stable": upstreams["stable"], **moved}
    assert json.loads(state_file.read_text()) == expected
    with start(upstreams, weight=0, state_file=state_file) as second:
        weights = httpx.get(f"{second.admin_url}/weights", trust_env=False).json()
        assert {key: weights[key] for key in expected} == expected
        httpx.put(f"{second.admin_url}/upstreams", json=upstreams, trust_env=False)
        assert send(second.url, 100)["canary"] == 40


@pytest.mark.parametrize(
    "body",
    [
        {"canary_weight": 101},
        {"canary_weight": -1},
        {"canary_weight": "10"},
        {"canary_weight": True},
        {},
        {"canary_weight": 10, "weight": 10},
        [10],
    ],
)
def test_invalid_weight_is_rejected_with_400(
    proxy: LocalProxyProcess, router: LocalRouter, body: object
) -> None:
    router.set_weight(7)

    response = httpx.put(f"{proxy.admin_url}/weights", json=body, trust_env=False)

    assert response.status_code == 400
    assert "canary_weight" in response.json()["error"] or "JSON object" in response.json()["error"]
    assert router.get_weight() == 7


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:1",
        "127.0.0.1:1",
        "http://",
        5,
        # Accepted before, then a 500 and a traceback on every request routed there.
        "http://127.0.0.1:99999",
        "http://user%3Aname:pw@127.0.0.1:1",  # basic auth cannot carry a ':' in the user
    ],
)
def test_invalid_upstream_is_rejected_with_400(proxy: LocalProxyProcess, url: object) -> None:
    response = httpx.put(f"{proxy.admin_url}/upstreams", json={"canary": url}, trust_env=False)

    assert response.status_code == 400
    assert "canary" in response.json()["error"]


def test_dead_upstream_gives_502_only_for_requests_routed_there(
    proxy: LocalProxyProcess, router: LocalRouter
) -> None:
    answer = httpx.put(f"{proxy.admin_url}/upstreams", json={"canary": dead_url()}, trust_env=False)
    assert answer.status_code == 200
    router.set_weight(50)

    with httpx.Client(base_url=proxy.url, trust_env=False) as client:
        responses = [client.get("/") for _ in range(20)]

    by_track = Counter((r.headers["X-Safeship-Track"], r.status_code) for r in responses)
    assert by_track == Counter({("stable", 200): 10, ("canary", 502): 10})
    weights = httpx.get(f"{proxy.admin_url}/weights", trust_env=False).json()
    assert weights["upstream_errors"] == {"stable": 0, "canary": 10}


def test_request_and_response_are_forwarded(
    proxy: LocalProxyProcess, upstreams: dict[str, str]
) -> None:
    response = httpx.post(
        f"{proxy.url}/orders?id=7",
        content=b"payload",
        headers={
            "X-Test": "yes",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "secret",
            "Authorization": "Bearer the-client's",
        },
        trust_env=False,
    )

    seen = response.json()
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/orders?id=7", "payload")
    assert seen["headers"]["x-test"] == "yes"
    # An upstream without credentials of its own gets the client's.
    assert seen["headers"]["authorization"] == "Bearer the-client's"
    assert "x-hop" not in seen["headers"]
    # The upstream sees its own host, not the proxy's.
    assert seen["headers"]["host"] == upstreams["stable"].removeprefix("http://")
    assert response.headers["X-Upstream"] == "stable"
    assert response.headers["X-Safeship-Track"] == "stable"


def test_weight_changes_under_concurrent_load_drop_nothing(
    proxy: LocalProxyProcess, router: LocalRouter
) -> None:
    statuses, tracks, shifts = asyncio.run(load_while_shifting(proxy.url, router, 300, 10))

    assert statuses == Counter({200: 300})
    assert tracks["stable"] > 0
    assert tracks["canary"] > 0
    assert shifts >= 3


async def load_while_shifting(
    url: str, router: LocalRouter, total: int, workers: int
) -> tuple[Counter[int], Counter[str], int]:
    """`total` requests from `workers` concurrent clients while the weight keeps moving."""
    statuses: Counter[int] = Counter()
    tracks: Counter[str] = Counter()
    queue = iter(range(total))
    done = asyncio.Event()

    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=workers), trust_env=False
    ) as client:

        async def worker() -> None:
            for _ in queue:
                response = await client.get("/")
                statuses[response.status_code] += 1
                tracks[response.headers["X-Safeship-Track"]] += 1

        async def shift() -> int:
            shifts = 0
            for weight in itertools.cycle((10, 50, 90, 100, 30, 0, 60)):
                if done.is_set():
                    break
                await asyncio.to_thread(router.set_weight, weight)
                shifts += 1
                await asyncio.sleep(0.01)
            return shifts

        shifter = asyncio.create_task(shift())
        await asyncio.gather(*(worker() for _ in range(workers)))
        done.set()
        return statuses, tracks, await shifter


def test_corrupt_state_file_fails_start_instead_of_guessing(
    upstreams: dict[str, str], tmp_path: Path
) -> None:
    state_file = tmp_path / "router.json"
    state_file.write_text('{"canary_weight": 250}')

    with pytest.raises(RouterError, match=r"state file .* is invalid: canary_weight"):
        start(upstreams, state_file=state_file)


def test_busy_port_fails_start_with_the_proxy_stderr(upstreams: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(RouterError, match=r"cannot listen on 127\.0\.0\.1"):
            start_local_proxy(
                f"127.0.0.1:{port}", "127.0.0.1:0", upstreams["stable"], upstreams["canary"]
            )


def test_stop_terminates_and_reaps_the_process(upstreams: dict[str, str]) -> None:
    with start(upstreams) as process:
        pid = process.pid
        assert httpx.get(f"{process.admin_url}/healthz", trust_env=False).json() == {"status": "ok"}

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    process.stop()  # a second stop is harmless


def test_clients_that_leave_early_are_normal_not_tracebacks(upstreams: dict[str, str]) -> None:
    # 298 tracebacks of 17 lines in 9,600 requests, before: a client that closes its
    # connection mid-answer (a browser's stop, a load balancer's timeout) is everyday traffic.
    with start(upstreams, weight=50) as process:
        host, port = process.url.removeprefix("http://").split(":")
        for _ in range(20):
            with socket.create_connection((host, int(port))) as client:
                client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                client.recv(65536)
                # RST instead of FIN: the harshest way to leave
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)
        assert httpx.get(process.url + "/after").status_code == 200  # still serving
        counters = httpx.get(process.admin_url + "/weights").json()
        assert counters["client_disconnects"] >= 15  # counted, not logged
        assert counters["upstream_errors"] == {"stable": 0, "canary": 0}  # nobody's fault
        stderr = process._child.stderr_tail(100_000)
    assert "Traceback" not in stderr
    assert "Error handling request" not in stderr


# Requests aimed past the upstream. The target used to be pasted onto the upstream URL, so
# `CONNECT @HOST:PORT` turned `http://user:pw@upstream` into a URL whose host was HOST and
# whose user was `user:pw@upstream`: the proxy sent the upstream's password to HOST as basic
# auth and handed back HOST's answer.

USER, PASSWORD = "proxyuser", "UpstreamS3cretPw"


class Listener:
    """A loopback port no request should ever reach: it records what each connection sent."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)  # a blocked accept() would not notice close()
        self.port = self._socket.getsockname()[1]
        self.received: list[bytes] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                with contextlib.suppress(OSError):
                    self.received.append(connection.recv(65536))
                    # Answer, so that a proxy that got here hands this back instead of hanging.
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def evil() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


def with_password(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


def basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture
def guarded(upstreams: dict[str, str]) -> Iterator[LocalProxyProcess]:
    """A proxy whose upstream URLs carry a password, as basic-auth protected services' do."""
    with start({track: with_password(url) for track, url in upstreams.items()}) as process:
        yield process


def exchange(url: str, request: bytes) -> tuple[int | None, bytes]:
    """Send `request` verbatim on a connection of its own; the status and the whole answer.

    The answer ends when the proxy closes the connection (refusals close it; other requests
    ask for it), or after 2 s: a proxy that forwarded a CONNECT may hold it open.
    """
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=2) as client:
        client.sendall(request)
        with contextlib.suppress(TimeoutError):
            while chunk := client.recv(65536):
                answer += chunk
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/") else None
    return (int(status) if status else None), answer


def assert_quiet(process: LocalProxyProcess) -> None:
    """Nothing a client sent shows up as a traceback, and the upstream password never shows."""
    check_quiet(process._child.stderr_tail(100_000))


def check_quiet(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "Error handling request" not in stderr
    assert PASSWORD not in stderr


def test_requests_aimed_at_another_host_are_refused_and_reach_nothing(
    upstreams: dict[str, str], evil: Listener
) -> None:
    # Run as `safeship router serve`, the command the review reproduced it with.
    upstream = with_password(upstreams["stable"])
    args = ["router", "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    args += ["--stable", upstream, "--canary", upstream]
    evil_address = f"127.0.0.1:{evil.port}"
    refusals = {
        f"CONNECT @{evil_address}": 405,
        f"CONNECT {evil_address}": 405,
        f"GET http://{evil_address}/": 400,
        f"GET http://{USER}:{PASSWORD}@{evil_address}/": 400,
        "GET http://evil.example/": 400,
        "OPTIONS *": 400,
    }
    with LocalProxyProcess(start_child("safeship", args, ("listen", "admin"), 10.0)) as process:
        answers = {
            line: exchange(process.url, f"{line} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            for line in refusals
        }
        counters = httpx.get(process.admin_url + "/weights", trust_env=False).json()
        stderr = process._child.stderr_tail(100_000)

    assert evil.received == []
    assert {line: status for line, (status, _) in answers.items()} == refusals
    assert not [line for line, (_, answer) in answers.items() if b"evil" in answer]
    assert counters["bad_requests"] == len(refusals)
    assert counters["requests"] == {"stable": 0, "canary": 0}  # never routed
    check_quiet(stderr)


@pytest.mark.parametrize(
    "line",
    [b"GET /a b HTTP/1.1", b"GET /\xff HTTP/1.1", b"GET :PORT/ HTTP/1.1", b"GET @PORT/ HTTP/1.1"],
    ids=["space", "non-ascii", "port-only", "at-port"],
)
def test_malformed_requests_are_a_counted_400_not_a_traceback(
    guarded: LocalProxyProcess, evil: Listener, line: bytes
) -> None:
    request = line.replace(b"PORT", f"127.0.0.1:{evil.port}".encode()) + b"\r\nHost: x\r\n\r\n"

    assert exchange(guarded.url, request)[0] == 400

    counters = httpx.get(guarded.admin_url + "/weights", trust_env=False).json()
    assert counters["bad_requests"] == 1
    assert httpx.get(guarded.url + "/after", trust_env=False).status_code == 200  # still serving
    assert evil.received == []
    assert_quiet(guarded)


def test_upstream_credentials_reach_that_upstream_as_basic_auth_and_nowhere_else(
    guarded: LocalProxyProcess, upstreams: dict[str, str], evil: Listener
) -> None:
    # A path that reads like an authority stays a path, on the upstream.
    path = f"//127.0.0.1:{evil.port}/orders?id=7"
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()

    status, answer = exchange(guarded.url, request)

    assert status == 200
    seen = json.loads(answer.partition(b"\r\n\r\n")[2])
    # (http.server folds the leading "//" into one "/", against open redirects.)
    assert (seen["name"], seen["path"]) == ("stable", path[1:])
    assert seen["headers"]["authorization"] == basic_auth()
    # Its Host is the upstream's, as before, and carries no user or password.
    assert seen["headers"]["host"] == upstreams["stable"].removeprefix("http://")
    assert evil.received == []
    assert_quiet(guarded)


def test_a_client_authorization_gives_way_to_the_upstream_credentials(
    guarded: LocalProxyProcess,
) -> None:
    # It used to be a 500 and a traceback: aiohttp refuses a header and URL credentials both.
    response = httpx.get(
        guarded.url + "/", headers={"Authorization": "Bearer the-client's"}, trust_env=False
    )

    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == basic_auth()
    assert_quiet(guarded)


@pytest.mark.parametrize(
    "line", [b"GET /a b HTTP/1.1", b"GET /\xff HTTP/1.1"], ids=["space", "byte"]
)
def test_malformed_requests_to_the_admin_port_are_a_400_not_a_traceback(
    guarded: LocalProxyProcess, line: bytes
) -> None:
    assert exchange(guarded.admin_url, line + b"\r\nHost: 127.0.0.1\r\n\r\n")[0] == 400
    assert httpx.get(guarded.admin_url + "/weights", trust_env=False).status_code == 200
    assert_quiet(guarded)


@pytest.mark.parametrize(
    ("headers", "body", "status", "weight"),
    [
        ("Content-Type: application/json", b"[" * 100_000 + b"]" * 100_000, 400, 0),
        # the body is read as UTF-8 whatever charset is named: this one is good JSON
        ("Content-Type: application/json; charset=bogus", b'{"canary_weight": 5}', 200, 5),
        ("Content-Encoding: gzip", b"0123456789", 400, 0),
        ("Content-Encoding: deflate", b"not deflate", 400, 0),
    ],
    ids=["deep", "charset", "gzip", "deflate"],
)
def test_admin_bodies_a_client_got_wrong_are_an_answer_not_a_traceback(
    guarded: LocalProxyProcess, headers: str, body: bytes, status: int, weight: int
) -> None:
    request = (
        f"PUT /weights HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    assert exchange(guarded.admin_url, request)[0] == status
    shown = httpx.get(guarded.admin_url + "/weights", trust_env=False).json()
    assert shown["canary_weight"] == weight
    assert_quiet(guarded)


def test_a_compressed_request_body_reaches_the_upstream_as_sent(
    guarded: LocalProxyProcess,
) -> None:
    # Decompressed here but sent with the client's Content-Length, the upstream would read the
    # next request on its pooled connection as the rest of this body (request smuggling).
    body = gzip.compress(b"hello")
    request = (
        f"POST /x HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}"
        "\r\nConnection: close\r\n\r\n"
    ).encode() + body
    status, answer = exchange(guarded.url, request)
    assert status == 200, answer
    seen = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert seen["headers"]["content-length"] == str(len(body))
    assert seen["headers"]["content-encoding"] == "gzip"
    assert_quiet(guarded)


def test_an_upstream_whose_host_dns_cannot_have_is_refused() -> None:
    from safeship.routers.local_proxy import parse_upstream

    with pytest.raises(ValueError, match="longer than 63"):
        parse_upstream(f"http://u:{PASSWORD}@{'a' * 64}.b:80", "stable")
