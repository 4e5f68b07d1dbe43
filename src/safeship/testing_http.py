"""The plumbing the in-process API doubles share: an HTTP server on loopback, in a thread.

Grafana and the Kubernetes API cannot run here, so their doubles are real
HTTP servers on 127.0.0.1 that the production clients talk to unchanged;
this is the part that starts and stops them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackDouble(ABC):
    """Serves `handler()` on a free 127.0.0.1 port from `start()` to `stop()`; `url` says where."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @abstractmethod
    def handler(self) -> type[BaseHTTPRequestHandler]:
        """A request handler class bound to this double's state."""

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: connections to `url` are refused from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
