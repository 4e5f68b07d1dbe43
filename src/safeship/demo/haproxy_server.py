"""A real HAProxy on loopback in front of two slots, for tests, benchmarks and demos.

It runs in the foreground (`-db`) as a child with its own config in a
temporary folder: one HTTP frontend on a free port, backend `app` with the
two slot servers, and the Runtime API on a unix socket at admin level, which
is what `HaproxyRouter` drives. The stable slot (the first) starts at weight
100 and the canary slot at 0. The binary comes from Debian's `haproxy`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from safeship.child import ChildHandle, ChildProcess
from safeship.config import HaproxyRouterSettings
from safeship.demo.monitoring import ServerStartError, free_port
from safeship.routers.haproxy import HaproxyRouter


def find_haproxy() -> str | None:
    """HAProxy's path: Debian puts it in /usr/sbin, which not every PATH holds."""
    found = shutil.which("haproxy")
    if found is None and os.access("/usr/sbin/haproxy", os.X_OK):
        found = "/usr/sbin/haproxy"
    return found


class HaproxyServer(ChildHandle):
    """HAProxy 2.6 balancing `slots` (name -> host:port, stable first) by weight."""

    def __init__(
        self, slots: dict[str, str], *, backend: str = "app", timeout: float = 10.0
    ) -> None:
        binary = find_haproxy()
        if binary is None:
            raise ServerStartError("haproxy is not installed (Debian package `haproxy`)")
        if len(slots) != 2:
            raise ValueError(f"HAProxyServer needs exactly two slots, got {list(slots)}")
        self.slots = dict(slots)
        self.backend = backend
        # Unix socket paths are limited to ~108 bytes: keep the folder name short.
        self._dir = tempfile.TemporaryDirectory(prefix="ssh-hap-")
        root = Path(self._dir.name)
        self.socket = root / "admin.sock"
        self.state_file = root / "router-state.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config_file = root / "haproxy.cfg"
        self.config_file.write_text(self._config())
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
        process = subprocess.Popen(
            [binary, "-f", str(self.config_file), "-db"],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
        self._child = ChildProcess(process, stderr, {})
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _config(self) -> str:
        first = True
        servers = []
        for name, address in self.slots.items():
            servers.append(f"    server {name} {address} weight {100 if first else 0}")
            first = False
        return "\n".join(
            [
                "global",
                f"    stats socket {self.socket} mode 600 level admin",
                "    maxconn 4096",
                "",
                "defaults",
                "    mode http",
                "    timeout connect 1s",
                "    timeout client 10s",
                "    timeout server 10s",
                "",
                "frontend web",
                f"    bind 127.0.0.1:{self.port}",
                f"    default_backend {self.backend}",
                "",
                f"backend {self.backend}",
                "    balance roundrobin",
                *servers,
                "",
            ]
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._child.returncode is not None:
                raise ServerStartError(
                    f"haproxy exited with code {self._child.returncode}: "
                    f"{self._child.stderr_tail(800)}"
                )
            if self.socket.exists():
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"haproxy not ready within {timeout:g}s: {self._child.stderr_tail(800)}"
                )
            time.sleep(0.02)

    def settings(self) -> HaproxyRouterSettings:
        """Router settings that drive this HAProxy."""
        names = tuple(self.slots)
        return HaproxyRouterSettings(
            socket=str(self.socket),
            backend=self.backend,
            slots=(names[0], names[1]),
            state_file=str(self.state_file),
        )

    def router(self) -> HaproxyRouter:
        return HaproxyRouter.from_settings(self.settings())

    def stop(self) -> None:
        self._child.stop(5)
        self._dir.cleanup()
