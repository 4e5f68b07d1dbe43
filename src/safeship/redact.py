"""Keeping secrets out of everything safeship shows or stores.

One place decides what a secret looks like in text: the user-info of a URL
(`user:password@`, or a bare token `TOKEN@`), password-like query parameters,
the credentials of an `Authorization` header, and values the caller knows to be
secret (revealed tokens, hook environment values) in every form they are
commonly printed in: plain, URL-encoded (`%XX` and `+`), JSON-escaped and
base64 (what `curl -v -u user:$TOKEN` shows). Every message, log line, stored
record and output goes through here.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "***"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(
    r"([?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret|key)=)[^&#\s]*",
    re.IGNORECASE,
)
# `Authorization: Basic dXNlcjpzZWNyZXQ=` (or Bearer, Token...; also Proxy-Authorization,
# and as curl -v or a JSON dump shows it): the credentials go, the scheme stays.
_AUTH_HEADER = re.compile(
    r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|token|digest)\s+)?)"
    r"[^\s'\",;]+",
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


def basic_credentials(user: str, secret: str) -> str:
    """The base64 an HTTP Basic header carries for `user:secret`: a form of the secret too."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


@lru_cache(maxsize=1024)
def secret_forms(secret: str) -> frozenset[str]:
    """`secret` as it is commonly printed: plain, URL-encoded (`%XX`, `+`), JSON-escaped, base64."""
    raw = secret.encode("utf-8", errors="surrogatepass")
    encoded = base64.b64encode(raw).decode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),  # the default keeps `/`
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        encoded,
        encoded.rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return frozenset(f for f in forms if len(f) >= _MIN_SCRUB_LENGTH)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with every URL and Authorization header redacted, and every known secret
    value masked in each of its common forms."""
    forms = {form for s in secrets if len(s) >= _MIN_SCRUB_LENGTH for form in secret_forms(s)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
