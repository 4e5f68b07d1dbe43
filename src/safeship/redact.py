"""Keeping secrets out of everything safeship shows or stores.

One place decides what a secret looks like in text: the user-info of a URL
(`user:password@`, or a bare token `TOKEN@`), password-like query parameters,
and values the caller knows to be secret (revealed tokens, hook environment
values). Every message, log line, stored record and output goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(
    r"([?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret|key)=)[^&#\s]*",
    re.IGNORECASE,
)
# Values shorter than this are not scrubbed from free text: masking every "1" or "ok"
# would make output unreadable without protecting anything.
_MIN_SCRUB_LENGTH = 4


def redact_url(url: str) -> str:
    """`url` with its user-info and password-like query parameters masked.

    Hosts never contain `@`, so the text after `://` up to the last `@` is
    user-info, even when a password holds `/` or `@`; when in doubt it masks.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _SECRET_PARAM.sub(rf"\1{MASK}", url)
    authority_and_path, q, query = rest.partition("?")
    userinfo, at, after = authority_and_path.rpartition("@")
    authority = authority_and_path.partition("/")[0]
    # An `@` later in the path is user-info only if a password (with a `/`) precedes it.
    if at and ("@" in authority or ":" in userinfo):
        user, colon, _ = userinfo.partition(":")
        # Keep a plain user name (it helps debugging); a lone token is masked whole.
        shown = f"{user}:{MASK}" if colon and "/" not in user else MASK
        authority_and_path = f"{shown}@{after}"
    return _SECRET_PARAM.sub(rf"\1{MASK}", f"{scheme}://{authority_and_path}{q}{query}")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with every URL redacted and every known secret value masked."""
    for secret in sorted(
        {s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, MASK)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
