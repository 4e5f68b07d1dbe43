"""Which listen addresses stay on this machine: admin and metrics listeners default to them."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Only addresses another machine cannot reach. Names other than `localhost` are not
    resolved: they may name any interface, so they count as remote."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
