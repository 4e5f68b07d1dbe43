"""A throwaway nginx on loopback in front of two slots, for the tests, benchmarks and demos.

It runs as a foreground child (`daemon off; master_process on;`) with its
own prefix in a temporary folder: configuration, pid file, error log and
temp paths all live there, so it touches nothing of a system nginx. Its
http block includes the file the nginx router owns, and its one proxy
server sends every request to that upstream. The first include file is
written by the router itself (stable 100, canary 0), so nginx starts with
the same file format every later change uses. The binary comes from the
Debian package `nginx-light` (installed in /usr/sbin).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from safeship.child import ChildHandle, ChildProcess
from safeship.config import NginxRouterSettings
from safeship.demo.monitoring import ServerStartError, free_port
from safeship.redact import shown
from safeship.routers.nginx import NginxRouter

NGINX_PACKAGE = "nginx-light"
# Old workers get this long to finish in-flight requests after a reload
# before they are closed, so repeated reloads never pile up old workers.
WORKER_SHUTDOWN_TIMEOUT = "10s"


def find_nginx() -> str | None:
    """The nginx binary: on PATH, else /usr/sbin where Debian installs it (not on every PATH)."""
    found = shutil.which("nginx")
    if found is not None:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


class NginxServer(ChildHandle):
    """nginx proxying `url` to `upstream`, whose servers are `slots` ({name: host:port}).

    The first slot is stable. `settings()` and `router()` give an nginx
    router for this very server (its config file, prefix, include file,
    status port and a state file in the same temporary folder).
    """

    def __init__(
        self,
        slots: Mapping[str, str],
        upstream: str = "app",
        *,
        worker_processes: int = 2,
        keepalive_timeout: str = "65s",
        timeout: float = 10.0,
    ) -> None:
        binary = find_nginx()
        if binary is None:
            raise ServerStartError(
                f"nginx is not installed (Debian package `{NGINX_PACKAGE}`: "
                f"apt-get install {NGINX_PACKAGE})"
            )
        self.binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="safeship-nginx-")
        self.prefix = Path(self._dir.name)
        self.config_file = self.prefix / "nginx.conf"
        self.include_file = self.prefix / "safeship-upstream.conf"
        self.state_file = self.prefix / "router-state.json"
        self.error_log = self.prefix / "error.log"
        self.pid_file = self.prefix / "nginx.pid"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.status_listen = f"127.0.0.1:{free_port()}"
        self.slots = dict(slots)
        self.upstream = upstream
        self.timeout = timeout
        try:
            self.router().write_initial()
            self.config_file.write_text(self._config(worker_processes, keepalive_timeout))
            (self.prefix / "temp").mkdir()
            if os.geteuid() == 0:
                # Workers run as an unprivileged user, which must reach the temp paths.
                self.prefix.chmod(0o755)
            command = [binary, "-p", str(self.prefix), "-c", str(self.config_file)]
            self._child = self._start(command)
        except BaseException:
            self._dir.cleanup()
            raise

    def _config(self, worker_processes: int, keepalive_timeout: str) -> str:
        root = self.prefix
        temp_paths = "".join(
            f"    {kind}_temp_path {root / 'temp' / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            "daemon off;\n"
            "master_process on;\n"
            f"worker_processes {worker_processes};\n"
            f"worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT};\n"
            f"pid {self.pid_file};\n"
            f"error_log {self.error_log} notice;\n"
            "events {\n    worker_connections 1024;\n}\n"
            "http {\n"
            "    access_log off;\n"
            f"    keepalive_timeout {keepalive_timeout};\n"
            f"{temp_paths}"
            f"    include {self.include_file};\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n"
            "        location / {\n"
            f"            proxy_pass http://{self.upstream};\n"
            "        }\n"
            "    }\n"
            "}\n"
        )

    def _start(self, command: list[str]) -> ChildProcess:
        # A file, not a pipe: nobody drains stderr while nginx runs.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        except BaseException:
            stderr.close()
            raise
        child = ChildProcess(process, stderr, {})
        deadline = time.monotonic() + self.timeout
        status_url = f"http://{self.status_listen}/safeship/{self.upstream}"
        while True:
            if child.returncode is not None:
                tail = self._log_tail(child)
                child.stop(1)
                raise ServerStartError(f"nginx exited with code {child.returncode}: {tail}")
            try:
                if httpx.get(status_url, timeout=1, trust_env=False).status_code == 200:
                    httpx.get(self.url, timeout=1, trust_env=False)  # the proxy port serves
                    return child
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                tail = self._log_tail(child)
                child.stop(2)
                raise ServerStartError(f"nginx not ready within {self.timeout:g}s: {tail}")
            time.sleep(0.05)

    def _log_tail(self, child: ChildProcess) -> str:
        """nginx's stderr (startup complaints) and the end of its error log."""
        try:
            log = shown(self.error_log.read_text(errors="replace"), limit=800, tail=True)
        except OSError:
            log = ""
        return " | ".join(part.strip() for part in (child.stderr_tail(800), log) if part.strip())

    def settings(self, **overrides: Any) -> NginxRouterSettings:
        """Router settings for this server; `overrides` replace any field (e.g. timeout)."""
        fields: dict[str, Any] = {
            "upstream": self.upstream,
            "include_file": str(self.include_file),
            "slots": self.slots,
            "status_listen": self.status_listen,
            "binary": self.binary,
            "config_file": str(self.config_file),
            "prefix": str(self.prefix),
            "state_file": str(self.state_file),
            "timeout": self.timeout,
        }
        return NginxRouterSettings(**(fields | overrides))

    def router(self, **overrides: Any) -> NginxRouter:
        """An nginx router driving this server."""
        return NginxRouter.from_settings(self.settings(**overrides))

    @property
    def pid(self) -> int:
        """The master's pid."""
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def stop(self) -> None:
        """SIGTERM to the master (a fast shutdown of every worker), then wait; safe to repeat."""
        self._child.stop(10)
        self._dir.cleanup()
