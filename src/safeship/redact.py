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
# Any query or fragment parameter whose name says it is a credential: auth_token,
# client_secret, X-Amz-Signature, private_token, #access_token=..., ;token=...
_SECRET_PARAM = re.compile(
    r"([?&#;][\w.-]*(?:pass|pwd|token|secret|key|sig|auth|credential)[\w.-]*=)[^&#;\s'\"<>]*",
    re.IGNORECASE,
)
# `Authorization: Basic dXNlcjpzZWNyZXQ=` (or Bearer, Token...; also Proxy-Authorization,
# and as curl -v or a JSON dump shows it): the credentials go, the scheme stays.
_AUTH_HEADER = re.compile(
    r"((?:proxy-)?authorization[\"']?[\s:=,\[(\"']*(?:[A-Za-z][\w-]*\s+)?)"
    r"[^\s'\"\])][^\r\n'\"\])]*",
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
    # The user-info ends at the last `@`, even past a `?`, `#` or `/` a password may hold:
    # when in doubt it masks.
    userinfo, at, after = rest.rpartition("@")
    authority = rest.partition("/")[0].partition("?")[0].partition("#")[0]
    if at and ("@" in authority or ":" in userinfo):
        user, colon, _ = userinfo.partition(":")
        # Keep a plain user name (it helps debugging); a lone token is masked whole.
        plain_user = colon and not any(c in user for c in "/?#")
        rest = f"{user}:{MASK}@{after}" if plain_user else f"{MASK}@{after}"
    return _SECRET_PARAM.sub(rf"\1{MASK}", f"{scheme}://{rest}")


def basic_credentials(user: str, secret: str) -> str:
    """The base64 an HTTP Basic header carries for `user:secret`: a form of the secret too."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


@lru_cache(maxsize=1024)
def secret_forms(secret: str) -> frozenset[str]:
    """`secret` as it is commonly printed: plain; URL-encoded (`%XX` in either case, `+`);
    JSON-escaped (also with Go's `\\u0026`-style escapes); hex; base64, also inside a longer
    base64 text (at each of the three alignments, keeping the characters only the secret
    decides)."""
    raw = secret.encode("utf-8", errors="surrogatepass")
    percent = quote(secret, safe="")
    forms = {
        secret,
        percent,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), percent),
        quote(secret),  # the default keeps `/`
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("&", "\\u0026").replace("<", "\\u003c"),
        raw.hex(),
        raw.hex().upper(),
    }
    encoded = base64.b64encode(raw).decode()
    forms |= {encoded, encoded.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    for offset in (0, 1, 2):
        # After `offset` unknown bytes, whole 3-byte groups of the secret alone.
        shifted = base64.b64encode(bytes(offset) + raw).decode()
        start = 4 if offset else 0
        whole = (len(raw) + offset) // 3 * 4
        forms.add(shifted[start:whole])
    return frozenset(f for f in forms if len(f) >= _MIN_SCRUB_LENGTH)


_remembered: set[str] = set()


def remember_secrets(secrets: Iterable[str]) -> None:
    """Secrets every later `redact_text` in this process masks, given or not: the CLI
    remembers the config's once it is loaded, so that an error raised anywhere (even a
    library's, quoting a URL it could not parse) cannot show them."""
    _remembered.update(s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with every URL and Authorization header redacted, and every known secret
    (given, or remembered) masked in each of its common forms."""
    known = {*secrets, *_remembered}
    forms = {form for s in known if len(s) >= _MIN_SCRUB_LENGTH for form in secret_forms(s)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
