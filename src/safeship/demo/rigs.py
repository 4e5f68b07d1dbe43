"""A router with its real data plane in front of two slots, ready to load.

The no-drop tests, the rollout tests and `benchmarks/routers.py` drive every
router the same way: two slot upstreams (tiny `SlotUpstream`s, unless the
caller runs its own services at given addresses), the router's data plane in
front (the local proxy, HAProxy, nginx), load sent to `url` and answers
counted by the track header. `canary_track` is the header value the canary's
answers carry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from safeship.config import LocalRouterSettings, RouterSettings
from safeship.demo.slot_upstream import SlotUpstream
from safeship.routers.interface import Router

RigKind = Literal["local", "haproxy", "nginx"]
RIG_KINDS: tuple[RigKind, ...] = ("local", "haproxy", "nginx")


@dataclass(frozen=True)
class RouterRig:
    """Where to send load, the router to drive (and its settings), how to tell the canary."""

    kind: RigKind
    url: str
    router: Router
    settings: RouterSettings
    slots: dict[str, str]  # slot name -> host:port, stable first
    stable_track: str
    canary_track: str


@contextlib.contextmanager
def router_rig(kind: RigKind, slots: dict[str, str] | None = None) -> Iterator[RouterRig]:
    """Start `kind`'s data plane in front of `slots` (blue/green upstreams when None).

    Everything started here stops on leaving the block.
    """
    with contextlib.ExitStack() as stack:
        if slots is None:
            blue = stack.enter_context(SlotUpstream("blue"))
            green = stack.enter_context(SlotUpstream("green"))
            slots = {"blue": blue.address, "green": green.address}
        stable, canary = slots
        if kind == "local":
            from safeship.routers.local import LocalRouter, start_local_proxy

            proxy = stack.enter_context(
                start_local_proxy(
                    "127.0.0.1:0",
                    "127.0.0.1:0",
                    f"http://{slots[stable]}",
                    f"http://{slots[canary]}",
                )
            )
            router: Router = LocalRouter(proxy.admin_url, slots=slots)
            stack.callback(router.close)
            settings: RouterSettings = LocalRouterSettings(admin_url=proxy.admin_url, slots=slots)
            # The local proxy stamps its own track names over the upstream's header.
            yield RouterRig(kind, proxy.url + "/", router, settings, slots, "stable", "canary")
        elif kind == "haproxy":
            from safeship.demo.haproxy_server import HaproxyServer

            haproxy = stack.enter_context(HaproxyServer(slots))
            router = haproxy.router()
            yield RouterRig(kind, haproxy.url, router, haproxy.settings(), slots, stable, canary)
        else:
            from safeship.demo.nginx_server import NginxServer

            nginx = stack.enter_context(NginxServer(slots))
            router = nginx.router()
            stack.callback(router.close)
            yield RouterRig(kind, nginx.url, router, nginx.settings(), slots, stable, canary)
