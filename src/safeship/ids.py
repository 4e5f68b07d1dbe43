"""Deployment ids: sortable by creation time and unique without coordination (ULID layout)."""

from __future__ import annotations

import secrets

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_deployment_id(now: float) -> str:
    """26 characters: 48 bits of milliseconds then 80 random bits, Crockford base32."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
