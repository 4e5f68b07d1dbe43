"""HaproxyRouter against a real HAProxy 2.6 in front of two tiny upstreams (blue, green).

Shifts under load are in test_routers_under_load.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from safeship.demo.haproxy_server import HaproxyServer
from safeship.demo.slot_upstream import SlotUpstream
from safeship.routers.haproxy import HaproxyRouter
from safeship.routers.interface import Slot, Slots

pytestmark = pytest.mark.integration


@dataclass
class Haproxy:
    url: str
    state_file: Path
    server: HaproxyServer
    upstreams: dict[str, SlotUpstream]

    def router(self) -> HaproxyRouter:
        return self.server.router()


@pytest.fixture
def haproxy(haproxy_installed: None) -> Iterator[Haproxy]:
    with (
        SlotUpstream("blue") as blue,
        SlotUpstream("green") as green,
        HaproxyServer({"blue": blue.address, "green": green.address}) as server,
    ):
        yield Haproxy(server.url, server.state_file, server, {"blue": blue, "green": green})


def count(url: str, n: int) -> Counter[str]:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return Counter(client.get(url).raise_for_status().text for _ in range(n))


def test_weights_steer_real_traffic(haproxy: Haproxy) -> None:
    router = haproxy.router()
    assert router.health().ok
    assert router.slots() == Slots(
        Slot("blue", haproxy.upstreams["blue"].address),
        Slot("green", haproxy.upstreams["green"].address),
    )

    started = time.monotonic()
    router.set_weight(10)
    print(f"set_weight(10) confirmed in {time.monotonic() - started:.4f}s")
    assert router.get_weight() == 10
    seen = count(haproxy.url, 200)
    assert 15 <= seen["green"] <= 25, seen
    assert seen["blue"] + seen["green"] == 200

    router.set_weight(0)
    assert router.get_weight() == 0
    assert count(haproxy.url, 50) == Counter(blue=50)

    router.set_weight(30)
    router.promote("green")
    assert count(haproxy.url, 50) == Counter(green=50)
    assert json.loads(haproxy.state_file.read_text())["stable"] == "green"
    assert router.slots() == Slots(
        Slot("green", haproxy.upstreams["green"].address),
        Slot("blue", haproxy.upstreams["blue"].address),
    )
    assert router.get_weight() == 0
    router.promote("green")  # a repeat (a resumed promotion) never swaps back
    assert count(haproxy.url, 20) == Counter(green=20)

    # The next rollout's canary is blue.
    router.set_weight(50)
    assert count(haproxy.url, 100) == Counter(blue=50, green=50)
    router.promote(router.slots().stable.name)  # a rollback
    assert count(haproxy.url, 20) == Counter(green=20)
