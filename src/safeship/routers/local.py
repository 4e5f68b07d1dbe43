"""The `local` router: the controller's side of the loopback proxy.

The proxy (`safeship.routers.local_proxy`) is a separate process so that
traffic keeps its last weight whatever happens to the controller; this module
only speaks its admin API, and can start the proxy as a child process for the
demo and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from safeship.child import ChildHandle, ChildProcess, ChildStartError, start_child
from safeship.errors import RouterError
from safeship.http import make_client
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
        self._client = make_client(
            self.admin_url, timeout=timeout, transport=transport, trust_env=False
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


class LocalProxyProcess(ChildHandle):
    """A running proxy child process; `stop()` (or leaving the `with` block) always reaps it."""

    def __init__(self, child: ChildProcess) -> None:
        self._child = child
        self.url = f"http://{child.ready['listen']}"
        self.admin_url = f"http://{child.ready['admin']}"

    @property
    def pid(self) -> int:
        return self._child.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM so in-flight requests drain, then SIGKILL if it overstays; safe to repeat."""
        self._child.stop(timeout)


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
    args = ["--listen", listen, "--admin", admin, "--stable", stable, "--canary", canary]
    args += ["--weight", str(weight)]
    if state_file is not None:
        args += ["--state-file", str(state_file)]
    try:
        child = start_child(
            "safeship.routers.local_proxy", args, ("listen", "admin"), ready_timeout
        )
    except ChildStartError as exc:
        raise RouterError(f"local proxy {exc}; stderr: {exc.stderr_tail or '(empty)'}") from None
    except OSError as exc:
        raise RouterError(f"cannot start the local proxy: {exc}") from exc
    return LocalProxyProcess(child)
