"""A router with its real data plane in front of two slot upstreams, ready to load.

The no-drop tests and `benchmarks/routers.py` drive every router the same
way: start two `SlotUpstream`s, put the router's data plane in front (the
local proxy, HAProxy, nginx), send load to `url` and count answers by the
track header. `canary_track` is the header value the canary's answers carry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from safeship.demo.slot_upstream import SlotUpstream
from safeship.routers.interface import Router

RigKind = Literal["local", "haproxy", "nginx"]
RIG_KINDS: tuple[RigKind, ...] = ("local", "haproxy", "nginx")


@dataclass(frozen=True)
class RouterRig:
    """Where to send load, the router to drive, and how to tell the canary's answers."""

    kind: RigKind
    url: str
    router: Router
    stable_track: str
    canary_track: str


@contextlib.contextmanager
def router_rig(kind: RigKind) -> Iterator[RouterRig]:
    """Start the upstreams and `kind`'s data plane; everything stops on leaving the block."""
    with contextlib.ExitStack() as stack:
        blue = stack.enter_context(SlotUpstream("blue"))
        green = stack.enter_context(SlotUpstream("green"))
        slots = {"blue": blue.address, "green": green.address}
        if kind == "local":
            from safeship.routers.local import LocalRouter, start_local_proxy

            proxy = stack.enter_context(
                start_local_proxy(
                    "127.0.0.1:0",
                    "127.0.0.1:0",
                    f"http://{blue.address}",
                    f"http://{green.address}",
                )
            )
            router: Router = LocalRouter(proxy.admin_url)
            stack.callback(router.close)
            # The local proxy stamps its own track names over the upstream's header.
            yield RouterRig(kind, proxy.url + "/", router, "stable", "canary")
        elif kind == "haproxy":
            from safeship.demo.haproxy_server import HaproxyServer

            haproxy = stack.enter_context(HaproxyServer(slots))
            yield RouterRig(kind, haproxy.url, haproxy.router(), "blue", "green")
        else:
            from safeship.demo.nginx_server import NginxServer

            nginx = stack.enter_context(NginxServer(slots))
            yield RouterRig(kind, nginx.url, nginx.router(), "blue", "green")
