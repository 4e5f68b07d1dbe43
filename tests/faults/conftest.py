"""Shared parts of the fault-injection suite: binaries, a fault-injecting proxy, the CLI.

The binaries it needs come from the fixtures of tests/conftest.py.

`FaultProxy` stands between safeship and a real server (Prometheus, Grafana) and
is switched while a rollout runs:

    pass           forward every request unchanged
    refuse         the listening socket is closed: connections are refused
    slow           wait `delay` seconds (past the client's timeout), then forward
    garbage-html   200 text/html (a login page of some proxy)
    garbage-json   200 application/json that does not parse
    error-envelope 422 with Prometheus' JSON error envelope (errorType execution)
    http500        500 with a plain-text body
"""

from __future__ import annotations

import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeship.store import open_store

Popen = subprocess.Popen[str]

MODES = (
    "pass",
    "refuse",
    "slow",
    "garbage-html",
    "garbage-json",
    "error-envelope",
    "http500",
)


class FaultProxy:
    """An HTTP proxy on a fixed loopback port in front of `upstream`, with a fault switch.

    Counts what it answered per mode in `served`, so a test can tell a fault was seen.
    """

    def __init__(self, upstream: str, *, delay: float = 2.0) -> None:
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.delay = delay
        self.mode = "pass"
        self.served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    # --- the switch -----------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        with self._lock:
            previous, self.mode = self.mode, mode
        if mode == "refuse" and previous != "refuse":
            self._close()
        elif mode != "refuse" and previous == "refuse":
            self._listen()

    def count(self, mode: str) -> int:
        with self._lock:
            return self.served.get(mode, 0)

    # --- serving --------------------------------------------------------------------

    def _listen(self) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                try:
                    proxy._answer(self)
                except OSError:
                    # The client gave up (its timeout) before the answer: what a slow
                    # server's client does. Nothing to report.
                    self.close_connection = True

            do_GET = _serve
            do_POST = _serve
            do_PATCH = _serve
            do_PUT = _serve
            do_DELETE = _serve

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        server = Server(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = self._thread = None

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            mode = self.mode
            self.served[mode] = self.served.get(mode, 0) + 1
        if mode == "refuse":
            # A kept-alive connection outlives the listener: drop it, as a dead server would.
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "slow":
            time.sleep(self.delay)
        if mode == "garbage-html":
            self._reply(handler, 200, "text/html", b"<html><body>Please log in</body></html>")
        elif mode == "garbage-json":
            self._reply(handler, 200, "application/json", b'{"status": "success", "data": ')
        elif mode == "error-envelope":
            envelope = (
                b'{"status":"error","errorType":"execution","error":"query processing '
                b'would load too many samples into memory in query execution"}'
            )
            self._reply(handler, 422, "application/json", envelope)
        elif mode == "http500":
            self._reply(handler, 500, "text/plain", b"Internal Server Error")
        else:
            self._forward(handler, body)

    def _forward(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        skip = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in skip}
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kind = response.getheader("Content-Type", "application/octet-stream")
            self._reply(handler, response.status, kind, data)
        finally:
            conn.close()

    @staticmethod
    def _reply(
        handler: http.server.BaseHTTPRequestHandler, status: int, kind: str, data: bytes
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def safeship(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m safeship --config CONFIG ARGS...`, with no Pushgateway unless `env` sets one."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATEWAY", "GRAFANA"))}
    base.pop("GITHUB_ACTIONS", None)
    return subprocess.run(
        [sys.executable, "-m", "safeship", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**base, **(env or {})},
    )


def start_safeship(config: Path, *args: str, env: dict[str, str] | None = None) -> Popen:
    """`safeship` in the background, for faults injected while it runs."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATEWAY", "GRAFANA"))}
    base.pop("GITHUB_ACTIONS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "safeship", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, **(env or {})},
    )


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def stored(store_url: str, deployment_id: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The rollout's stored state and its decisions, read by a separate store (reader)."""
    store = open_store(store_url)
    try:
        return store.load_state(deployment_id), list(store.decisions(deployment_id))
    finally:
        store.close()


def rollout_reaches(
    store_url: str, deployment_id: str, predicate: Callable[[dict[str, Any], list[Any]], bool]
) -> Callable[[], bool]:
    """A `wait_for` predicate over the stored state (False while the rollout does not exist)."""

    def check() -> bool:
        try:
            state, decisions = stored(store_url, deployment_id)
        except Exception:
            return False
        return state is not None and predicate(state, decisions)

    return check


def first_verdict(state: dict[str, Any], decisions: list[Any]) -> bool:
    return any("verdict" in d.inputs for d in decisions)
