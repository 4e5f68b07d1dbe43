"""The `local` router: the controller's side of the loopback proxy.

The proxy (`safeship.routers.local_proxy`) is a separate process so that
traffic keeps its last weight whatever happens to the controller; this module
only speaks its admin API, and can start the proxy as a child process for the
demo and the tests.
"""

from __future__ import annotations

import os
import selectors
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

import safeship
from safeship.errors import RouterError
from safeship.routers.interface import Router, RouterHealth


class LocalRouter(Router):
    """Sets and confirms the canary weight through the local proxy's admin API."""

    def __init__(
        self,
        admin_url: str,
        timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._timeout = timeout
        # trust_env=False: an HTTP(S)_PROXY meant for the internet must not
        # capture calls to a loopback admin port.
        self._client = httpx.Client(
            base_url=self.admin_url, timeout=timeout, transport=transport, trust_env=False
        )

    def set_weight(self, weight: int) -> None:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise ValueError(f"canary weight must be an integer from 0 to 100, got {weight!r}")
        in_force = self._weight_in(self._call("PUT", "/weights", {"canary_weight": weight}))
        if in_force != weight:
            raise RouterError(
                f"local router {self.admin_url}: asked for canary weight {weight}, "
                f"but it reports {in_force}"
            )

    def get_weight(self) -> int:
        return self._weight_in(self._call("GET", "/weights"))

    def health(self) -> RouterHealth:
        """Never raises: an unreachable proxy is an unhealthy one, and the detail says why."""
        try:
            body = self._call("GET", "/healthz")
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        if body.get("status") != "ok":
            return RouterHealth(ok=False, detail=f"local router {self.admin_url}: {body}")
        return RouterHealth(ok=True, detail=f"local router {self.admin_url}: ok")

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One admin request; every way it can fail becomes a RouterError naming the URL."""
        what = f"local router {self.admin_url}: {method} {path}"
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise RouterError(f"{what} timed out after {self._timeout}s") from None
        except httpx.HTTPError as exc:
            raise RouterError(f"{what} failed: {exc!r}") from None
        if response.is_error:
            raise RouterError(f"{what} returned HTTP {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
        except ValueError:
            raise RouterError(f"{what} returned invalid JSON: {response.text[:200]!r}") from None
        if not isinstance(payload, dict):
            raise RouterError(f"{what} returned {payload!r}, expected a JSON object")
        return payload

    def _weight_in(self, payload: dict[str, Any]) -> int:
        weight = payload.get("canary_weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise RouterError(
                f"local router {self.admin_url}: answer has no valid canary_weight: {payload!r}"
            )
        return weight


class LocalProxyProcess:
    """A running proxy child process; `stop()` (or leaving the `with` block) always reaps it."""

    def __init__(
        self, process: subprocess.Popen[bytes], stderr: IO[bytes], url: str, admin_url: str
    ) -> None:
        self._process = process
        self._stderr = stderr
        self.url = url
        self.admin_url = admin_url

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM so in-flight requests drain, then SIGKILL if it overstays; safe to repeat."""
        _terminate(self._process, timeout)
        self._stderr.close()

    def __enter__(self) -> LocalProxyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_local_proxy(
    listen: str,
    admin: str,
    stable: str,
    canary: str,
    weight: int = 0,
    state_file: Path | None = None,
    ready_timeout: float = 10.0,
) -> LocalProxyProcess:
    """Start the proxy as a child process and wait until both of its ports listen.

    `listen` and `admin` are `HOST:PORT`; port 0 lets the proxy pick a free port
    without the race of probing first, and the returned URLs carry the real ones.
    """
    command = [sys.executable, "-m", "safeship.routers.local_proxy"]
    command += ["--listen", listen, "--admin", admin, "--stable", stable, "--canary", canary]
    command += ["--weight", str(weight)]
    if state_file is not None:
        command += ["--state-file", str(state_file)]
    # A file, not a pipe: nobody drains stderr while the proxy runs.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the LocalProxyProcess owns and closes it
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(),
        )
    except OSError as exc:
        stderr.close()
        raise RouterError(f"cannot start the local proxy: {exc}") from exc
    try:
        addresses = _wait_ready(process, ready_timeout)
    except RouterError as exc:
        raise RouterError(f"{exc}; stderr: {_reap(process, stderr)}") from None
    except BaseException:
        _reap(process, stderr)
        raise
    return LocalProxyProcess(
        process,
        stderr,
        url=f"http://{addresses['listen']}",
        admin_url=f"http://{addresses['admin']}",
    )


def _child_env() -> dict[str, str]:
    """Make the child import this very safeship, also when it runs from an uninstalled tree.

    An installed copy needs nothing, and putting site-packages on PYTHONPATH
    would move it ahead of the standard library, so only other roots are added.
    """
    env = dict(os.environ)
    root = Path(safeship.__file__).resolve().parent.parent
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    if root not in {Path(path).resolve() for path in site_dirs}:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _wait_ready(process: subprocess.Popen[bytes], timeout: float) -> dict[str, str]:
    """Read stdout until the `ready listen=... admin=...` line; RouterError on exit or timeout."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RouterError(f"local proxy did not report ready within {timeout}s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RouterError(f"local proxy exited with code {process.wait()} before ready")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
    if not line.startswith("ready ") or not {"listen", "admin"} <= fields.keys():
        raise RouterError(f"local proxy printed {line!r} instead of its ready line")
    return fields


def _reap(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> str:
    """Stop a proxy that failed to start; return the tail of what it said on stderr."""
    _terminate(process, timeout=2.0)
    stderr.seek(0)
    tail = stderr.read()[-2000:].decode("utf-8", "replace").strip()
    stderr.close()
    return tail or "(empty)"


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
