"""A tiny HTTP server standing for one slot behind a real proxy, for tests and benchmarks.

Every GET is answered 200 with the slot's name in the body and in the
`X-Safeship-Track` header, which the load generator counts, so the split a
proxy really applies can be read off the answers without any metrics.
"""

from __future__ import annotations

import http.server
import sys
import threading

from safeship.child import ChildHandle
from safeship.demo.load import TRACK_HEADER


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A proxy closing an idle keep-alive connection is routine, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class SlotUpstream(ChildHandle):
    """An HTTP server on a free loopback port answering with `name`, in a thread."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1 so a proxy may keep connections to it alive.
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's algorithm
            # and the peer's delayed ACK hold every answer back for ~40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header(TRACK_HEADER, name)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: hundreds of requests a second would flood the test output."""

        self.name = name
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"upstream-{name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
