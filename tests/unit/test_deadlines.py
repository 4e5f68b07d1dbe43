"""A server that trickles its answer fails like a silent one: every request has one deadline.

The adversary's endpoint sends a byte every 0.2 s, each read well inside any
read timeout, in the headers or in the body, forever. Before deadlines a
rollout (and its preflight) hung on it at 10% indefinitely.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from safeship.deadlines import DeadlineExceeded, call_with_deadline
from safeship.errors import ProviderError
from safeship.http import make_client
from safeship.providers.interface import Window
from safeship.providers.scrape import ScrapeProvider

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"


class Dripper:
    """A loopback server that answers every connection one byte at a time, until stopped."""

    def __init__(self, where: str) -> None:
        self.where = where  # "headers" or "body"
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/metrics"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            payload = HEADERS + b"#" * 100000
            if self.where == "body":
                conn.sendall(HEADERS)
                payload = b"#" * 100000
            for byte in payload:
                if self.stopped.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture(params=["headers", "body"])
def dripper(request: pytest.FixtureRequest) -> Iterator[Dripper]:
    server = Dripper(request.param)
    yield server
    server.stop()


@pytest.mark.timeout(30)
def test_a_trickled_answer_times_out_at_the_deadline(dripper: Dripper) -> None:
    with make_client(timeout=1.0) as client:
        began = time.monotonic()
        with pytest.raises(httpx.TimeoutException, match="deadline"):
            client.get(dripper.url)
        assert time.monotonic() - began < 10  # the deadline, not never


@pytest.mark.timeout(30)
def test_the_scrape_provider_reports_a_trickling_target_as_a_provider_error(
    dripper: Dripper,
) -> None:
    provider = ScrapeProvider(dripper.url, dripper.url, timeout=1.0)
    try:
        with pytest.raises(ProviderError, match="cannot scrape canary"):
            provider.ready()
        with pytest.raises(ProviderError):
            provider.measure(Window(0.0, 1.0))
    finally:
        provider.close()


def test_each_request_gets_its_own_deadline() -> None:
    # Answers that each take less than the deadline never add up to it.
    def slow_but_fine(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="ok")

    with make_client(timeout=0.5, transport=httpx.MockTransport(slow_but_fine)) as client:
        for _ in range(3):
            assert client.get("http://127.0.0.1:1/").text == "ok"


def test_a_call_given_up_on_at_its_deadline_says_what_it_was() -> None:
    release = threading.Event()
    with pytest.raises(
        DeadlineExceeded, match=r"reading the thing: no complete answer within 0\.2s"
    ):
        call_with_deadline(release.wait, 0.2, "reading the thing")
    release.set()
    assert call_with_deadline(lambda: 7, 1.0, "quick") == 7
