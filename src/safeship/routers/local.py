"""The `local` router: the controller's side of the loopback proxy.

The proxy (`safeship.routers.local_proxy`) is a separate process so that
traffic keeps its last weight whatever happens to the controller; this module
only speaks its admin API, and can start the proxy as a child process for the
demo and the tests.

Its two slots are the proxy's two upstreams: the one on its `stable` track is
the stable slot. Promotion first sends the canary all traffic, then swaps the
tracks in one admin call (weight 0 on the old stable one), so the promoted
process goes on serving with no restart and no request dropped, and the next
canary goes into the other slot. The proxy's own state is therefore the truth
of which slot is stable. Slots are named in `router.slots` (name -> host:port);
without it, each slot is named by its address.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from safeship.child import ChildHandle, ChildProcess, ChildStartError, start_child
from safeship.errors import RouterError
from safeship.http import make_client
from safeship.redact import redact_url, shown, url_password_forms
from safeship.routers.interface import Router, RouterHealth, Slot, Slots, check_weight


class LocalRouter(Router):
    """Sets and confirms the canary weight through the local proxy's admin API."""

    def __init__(
        self,
        admin_url: str,
        timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        slots: Mapping[str, str] | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._shown = redact_url(self.admin_url)  # what messages say: never a password
        # What the admin API (or a proxy before it) may quote back of the credentials sent:
        # the token, the admin URL's password (sent as HTTP Basic).
        self._secrets = [
            *url_password_forms(self.admin_url),
            *([admin_token] if admin_token else []),
        ]
        self._timeout = timeout
        self._names = {address: name for name, address in (slots or {}).items()}
        self._client = make_client(
            self.admin_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {admin_token}"} if admin_token else None,
            transport=transport,
            trust_env=False,
        )

    def set_weight(self, weight: int) -> None:
        check_weight(weight)
        self._confirm(self._call("PUT", "/weights", {"canary_weight": weight}), weight)

    def get_weight(self) -> int:
        return self._weight_in(self._call("GET", "/weights"))

    def slots(self) -> Slots:
        return self._slots_in(self._call("GET", "/weights"))

    def promote(self, slot: str) -> None:
        """All traffic to `slot`, then make its upstream the stable track; safe to repeat."""
        table = self._call("GET", "/weights")
        slots = self._slots_in(table)
        if slot == slots.stable.name:
            self._confirm(self._call("PUT", "/weights", {"canary_weight": 0}), 0)
            return
        if slot != slots.canary.name:
            raise RouterError(
                f"local router {self._shown}: cannot promote {slot!r}: its slots are "
                f"{slots.stable.name} (stable) and {slots.canary.name}"
            )
        self._confirm(self._call("PUT", "/weights", {"canary_weight": 100}), 100)
        swap = {"stable": table["canary"], "canary": table["stable"], "canary_weight": 0}
        swapped = self._call("PUT", "/upstreams", swap)
        self._confirm(swapped, 0)
        if self._slots_in(swapped).stable.name != slot:
            raise RouterError(
                f"local router {self._shown}: {slot} is not the stable slot after the swap"
            )

    def health(self) -> RouterHealth:
        """Never raises: an unreachable proxy is an unhealthy one, and the detail says why."""
        try:
            body = self._call("GET", "/healthz")
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        if body.get("status") != "ok":
            return RouterHealth(ok=False, detail=f"local router {self._shown}: {body}")
        return RouterHealth(ok=True, detail=f"local router {self._shown}: ok")

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One admin request; every way it can fail becomes a RouterError naming the URL."""
        what = f"local router {self._shown}: {method} {path}"
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise RouterError(f"{what} timed out after {self._timeout}s") from None
        except httpx.HTTPError as exc:
            raise RouterError(f"{what} failed: {exc!r}") from None
        if response.is_error:
            answer = shown(response.text, self._secrets)
            raise RouterError(f"{what} returned HTTP {response.status_code}: {answer}")
        try:
            payload = response.json()
        except ValueError:
            answer = shown(response.text, self._secrets)
            raise RouterError(f"{what} returned invalid JSON: {answer!r}") from None
        if not isinstance(payload, dict):
            raise RouterError(f"{what} returned {payload!r}, expected a JSON object")
        return payload

    def _confirm(self, payload: dict[str, Any], weight: int) -> None:
        in_force = self._weight_in(payload)
        if in_force != weight:
            raise RouterError(
                f"local router {self._shown}: asked for canary weight {weight}, "
                f"but it reports {in_force}"
            )

    def _slots_in(self, payload: dict[str, Any]) -> Slots:
        """The proxy's stable and canary upstreams as slots, named from `slots` if given."""
        found = []
        for track in ("stable", "canary"):
            url = payload.get(track)
            address = urlsplit(url).netloc if isinstance(url, str) else ""
            if not address:
                raise RouterError(
                    f"local router {self._shown}: answer has no {track} upstream: {payload!r}"
                )
            if self._names and address not in self._names:
                known = ", ".join(f"{n}={a}" for a, n in self._names.items())
                raise RouterError(
                    f"local router {self._shown}: the proxy's {track} upstream {address} is "
                    f"none of the slots in router.slots ({known}); point the proxy at the "
                    "slots or fix router.slots"
                )
            found.append(Slot(self._names.get(address, address), address))
        stable, canary = found
        if stable.name == canary.name:
            raise RouterError(
                f"local router {self._shown}: both tracks go to {stable.name} "
                f"({stable.address}): the proxy has one slot, not two"
            )
        return Slots(stable, canary)

    def _weight_in(self, payload: dict[str, Any]) -> int:
        weight = payload.get("canary_weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise RouterError(
                f"local router {self._shown}: answer has no valid canary_weight: {payload!r}"
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
