"""A throwaway Prometheus (and Pushgateway) on loopback, for the demo and the tests.

Prometheus scrapes every second from a file-based target list that can be
changed while it runs (Prometheus watches the file), so services started
later are picked up without a reload. Storage lives in a temporary folder
that goes away with the server. The binaries come from the Debian packages
`prometheus` and `prometheus-pushgateway`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from safeship.child import ChildHandle, ChildProcess
from safeship.files import write_atomically

PROMETHEUS_PACKAGE = {"prometheus": "prometheus", "promtool": "prometheus"}
PUSHGATEWAY_BINARY = "prometheus-pushgateway"


class ServerStartError(RuntimeError):
    """A monitoring server did not become ready; the message carries its stderr tail."""


def find_binary(name: str) -> str | None:
    """The path of a monitoring binary, or None (Debian installs them in /usr/bin)."""
    return shutil.which(name)


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for servers that cannot be given port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(command: list[str], ready_url: str, timeout: float, what: str) -> ChildProcess:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )
    child = ChildProcess(process, stderr, {})
    deadline = time.monotonic() + timeout
    while True:
        if child.returncode is not None:
            tail = child.stderr_tail(800)
            child.stop(1)
            raise ServerStartError(f"{what} exited with code {child.returncode}: {tail}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return child
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            tail = child.stderr_tail(800)
            child.stop(2)
            raise ServerStartError(f"{what} not ready within {timeout:g}s: {tail}")
        time.sleep(0.1)


class PrometheusServer(ChildHandle):
    """Prometheus scraping `add_targets()` every `scrape_interval` seconds."""

    def __init__(
        self,
        *,
        scrape_interval: float = 1.0,
        timeout: float = 30.0,
        rule_files: tuple[Path, ...] = (),
        alertmanager: str | None = None,
    ) -> None:
        binary = find_binary("prometheus")
        if binary is None:
            raise ServerStartError("prometheus is not installed (Debian package `prometheus`)")
        self._dir = tempfile.TemporaryDirectory(prefix="safeship-prometheus-")
        root = Path(self._dir.name)
        self.targets_file = root / "targets.json"
        self.targets_file.write_text("[]")
        self.config_file = root / "prometheus.yml"
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files
        self.alertmanager = alertmanager
        self._targets: list[dict[str, object]] = []
        self.config_file.write_text(self._config())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        try:
            self._child = _start(command, f"{self.url}/-/ready", timeout, "prometheus")
        except BaseException:
            self._dir.cleanup()
            raise

    def _config(self) -> str:
        interval = f"{self.scrape_interval:g}s"
        text = (
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: safeship\n"
            "    honor_labels: true\n"
            "    file_sd_configs:\n"
            f"      - files: ['{self.targets_file}']\n"
        )
        if self.rule_files:
            text += "rule_files:\n" + "".join(f"  - '{f}'\n" for f in self.rule_files)
        if self.alertmanager:
            text += (
                "alerting:\n  alertmanagers:\n    - static_configs:\n"
                f"        - targets: ['{self.alertmanager}']\n"
            )
        return text

    def add_targets(self, *addresses: str, **labels: str) -> None:
        """Scrape `host:port` addresses from now on (written atomically; Prometheus watches)."""
        self._targets.append({"targets": list(addresses), "labels": labels})
        write_atomically(self.targets_file, json.dumps(self._targets).encode())

    def wait_for_targets(self, *addresses: str, timeout: float = 20.0) -> None:
        """Block until each `host:port` has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.get(f"{self.url}/api/v1/targets", timeout=2).json()
            up = {
                t["labels"].get("instance")
                for t in body["data"]["activeTargets"]
                if t.get("health") == "up"
            }
            if set(addresses) <= up:
                return
            time.sleep(0.2)
        raise ServerStartError(
            f"prometheus did not scrape {', '.join(addresses)} within {timeout}s"
        )

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def kill(self) -> None:
        """Stop it abruptly, as an outage would."""
        self._child.stop(0)

    def stop(self) -> None:
        self._child.stop(5)
        self._dir.cleanup()


class PushgatewayServer(ChildHandle):
    """A Pushgateway on a free loopback port, keeping nothing on disk."""

    def __init__(self, *, timeout: float = 20.0) -> None:
        binary = find_binary(PUSHGATEWAY_BINARY)
        if binary is None:
            raise ServerStartError(
                "prometheus-pushgateway is not installed (Debian package `prometheus-pushgateway`)"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every
        # instance would load the groups earlier ones pushed. An empty file keeps none.
        command = [
            binary,
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--persistence.file=",
            "--log.level=warn",
        ]
        self._child = _start(command, f"{self.url}/-/ready", timeout, "pushgateway")

    def stop(self) -> None:
        self._child.stop(5)


class AlertmanagerServer(ChildHandle):
    """Alertmanager 0.25 on a free loopback port with `config` (YAML text), no clustering."""

    def __init__(self, config: str, *, timeout: float = 20.0) -> None:
        binary = find_binary("prometheus-alertmanager")
        if binary is None:
            raise ServerStartError(
                "prometheus-alertmanager is not installed (Debian package "
                "`prometheus-alertmanager`)"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="safeship-alertmanager-")
        root = Path(self._dir.name)
        (root / "alertmanager.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        command = [
            binary,
            f"--config.file={root / 'alertmanager.yml'}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip port on 0.0.0.0
            "--log.level=warn",
        ]
        try:
            self._child = _start(command, f"{self.url}/-/ready", timeout, "alertmanager")
        except BaseException:
            self._dir.cleanup()
            raise

    def stop(self) -> None:
        self._child.stop(5)
        self._dir.cleanup()
