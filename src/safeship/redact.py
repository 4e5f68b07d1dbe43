"""Keeping secrets out of everything safeship shows or stores.

One place decides what a secret looks like in text: the user-info of a URL
(`user:password@`, or a bare token `TOKEN@`), password-like query parameters,
the credentials of an `Authorization` header, and values the caller knows to be
secret (revealed tokens, hook environment values) in every form they are
commonly printed in: plain, URL-encoded (`%XX` and `+`, and httpx's partial
encoding), JSON-escaped, shell-quoted, HTML-escaped, Python's repr, and base64
(what `curl -v -u user:$TOKEN` shows, and the wrapped lines `base64` prints).
Every message, log line, stored record and output goes through here; text from
outside (a response body, a child's stderr) is redacted whole before it is
shortened (`shown`), so a cut can never leave a credential's first part.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote, urlsplit

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
# The columns base64 text is wrapped at: GNU `base64` (and MIME, Python's encodebytes) at
# 76, `openssl base64` (and PEM) at 64. Both are whole 4-character groups.
_BASE64_WIDTHS = (76, 64)
_URLSAFE = str.maketrans("+/", "-_")
# What httpx leaves unencoded besides letters, digits and `-._~` (httpx/_urlparse.py):
# a password in user-info, a path, a query written in the URL.
_HTTPX_SAFE = ("!$&'()*+,", "!$&'()*+,;=:@/[]\\^|", "!$&'()*+,;=:@/?[]\\^`{|}~")


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
    host = authority.rpartition("@")[2].partition(":")[0].lower()
    if host in _SECRET_PATH_HOSTS or (host.endswith("discord.com") and "/webhooks/" in rest):
        # The path is the credential (hooks.slack.com/services/T/B/secret).
        rest = f"{rest.partition('/')[0]}/{MASK}"
    return _SECRET_PARAM.sub(rf"\1{MASK}", f"{scheme}://{rest}")


# Webhook hosts whose URL path is itself the secret.
_SECRET_PATH_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com", "outlook.office.com"})


@lru_cache(maxsize=256)
def basic_credential_forms(user: str, secret: str) -> frozenset[str]:
    """`user:secret` in base64, as an HTTP Basic header carries it (and `curl -v` shows it),
    in the URL-safe alphabet too, and the lines of its wrapped encodings (`printf %s
    "user:$TOKEN" | base64`): forms of the secret that `secret_forms` cannot know, since
    they depend on the user. Each is a secret to mask (in its own forms too)."""
    raw = f"{user}:{secret}".encode("utf-8", errors="surrogatepass")
    encoded = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    forms = {encoded, urlsafe, urlsafe.rstrip("="), *_wrapped_lines(raw)}
    return frozenset(f for f in forms if len(f) >= _MIN_SCRUB_LENGTH)


def url_password_forms(url: str) -> list[str]:
    """The password in `url`'s user-info (decoded) and the HTTP Basic credentials an HTTP
    client sends for it: what a server (or a proxy before it) may quote back."""
    parts = urlsplit(url)
    if not parts.password:
        return []
    password = unquote(parts.password)
    return [password, *basic_credential_forms(unquote(parts.username or ""), password)]


def _wrapped_lines(raw: bytes) -> set[str]:
    """The lines of `raw`'s base64 wrapped at each of `_BASE64_WIDTHS` columns, when it is
    longer than a line. Also the lines of the encoding of its whole 3-byte groups only:
    `echo "$TOKEN" | base64` encodes a newline after the secret, which changes only the
    last group."""
    lines: set[str] = set()
    encoded = base64.b64encode(raw).decode()
    for text in (encoded, encoded[: len(raw) // 3 * 4]):
        for width in _BASE64_WIDTHS:
            if len(encoded) > width:
                lines.update(text[i : i + width] for i in range(0, len(text), width))
    return lines


def shell_escaped(text: str) -> str:
    """`text` as bash's `printf %q` writes it for plain characters: a backslash before each
    one the shell would read otherwise."""
    return re.sub(r"([^A-Za-z0-9_./,:@%+=-])", r"\\\1", text)


@lru_cache(maxsize=1024)
def secret_forms(secret: str) -> frozenset[str]:
    """`secret` as it is commonly printed: plain; URL-encoded (`%XX` in either case, `+`,
    and httpx's partial encoding, which leaves `!$&'()*+,` and more alone); JSON-escaped
    (also with Go's `\\u0026`-style escapes, PHP's `\\/` and upper-case `\\u00E9`); shell-
    quoted (the inner text of bash `set -x`'s `'it'\\''s'` and shlex.quote's `'it'"'"'s'`);
    Python's repr; HTML-escaped; hex; base64, also wrapped at 76 or 64 columns, and inside
    a longer base64 text, standard or URL-safe (at each of the three alignments, keeping the
    characters only the secret decides).

    Cached: `redact_text` asks for the forms of every known secret on every message."""
    raw = secret.encode("utf-8", errors="surrogatepass")
    percent = quote(secret, safe="")
    escaped = json.dumps(secret)[1:-1]
    forms = {
        secret,
        percent,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), percent),
        quote(secret),  # the default keeps `/`
        quote_plus(secret),
        *(quote(secret, safe=safe) for safe in _HTTPX_SAFE),
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped.replace("&", "\\u0026").replace("<", "\\u003c"),
        escaped.replace("/", "\\/"),
        re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped),
        secret.replace("'", "'\\''"),
        secret.replace("'", "'\"'\"'"),
        repr(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        html.escape(secret).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),  # Go, Jinja
        quote(percent, safe=""),  # encoded twice, as a URL inside a URL
        shell_escaped(secret),  # bash printf %q
        raw.hex(),
        raw.hex().upper(),
        base64.b32encode(raw).decode(),
        base64.b32encode(raw).decode().rstrip("="),
    }
    encoded = base64.b64encode(raw).decode()
    forms |= {encoded, encoded.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    forms |= _wrapped_lines(raw)
    for offset in (0, 1, 2):
        # After `offset` unknown bytes, whole 3-byte groups of the secret alone, in either
        # alphabet (`user:secret` as a URL-safe token, for a user safeship was not told).
        shifted = base64.b64encode(bytes(offset) + raw).decode()
        start = 4 if offset else 0
        whole = (len(raw) + offset) // 3 * 4
        forms |= {shifted[start:whole], shifted[start:whole].translate(_URLSAFE)}
    return frozenset(f for f in forms if len(f) >= _MIN_SCRUB_LENGTH)


_remembered: set[str] = set()


_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIALS?|DSN|PAT|WEBHOOK(_?URL)?)$", re.I
)
# Tokens whose format says what they are, wherever they appear (a hook's output, an
# error): GitHub's, GitLab's, Slack's, AWS access key ids, Slack and Discord webhooks.
_TOKEN_FORMATS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16})\b"
)


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """The values of the environment's variables whose names say they are secrets
    (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, PAGERDUTY_ROUTING_KEY, GH_PAT,
    SLACK_WEBHOOK_URL, SENTRY_DSN, ...): a hook inherits them all, and a
    careless one prints them; at least 8 characters, so `true` or a port is never masked."""
    return [v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]


def remember_secrets(secrets: Iterable[str]) -> None:
    """Secrets every later `redact_text` in this process masks, given or not: the CLI
    remembers the config's once it is loaded, so that an error raised anywhere (even a
    library's, quoting a URL it could not parse) cannot show them."""
    _remembered.update(s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH)


# How far past the cut `shown` redacts: a credential or URL the cut goes through is whole
# within it, and a huge body costs no more than this to redact.
SHOWN_MARGIN = 64 * 1024
_CUT = "..."


def shown(text: str, secrets: Iterable[str] = (), limit: int = 200, *, tail: bool = False) -> str:
    """`text` from outside (a response body, a child's stderr, an exception's message) fit
    for a message: redacted, then cut to at most `limit` characters, keeping its start (or
    with `tail`, its end), the cut marked with `...`.

    Redacting before cutting is the point: a cut through a credential leaves a piece that is
    no form of any secret (`glsa_PARTIAL`) and that nothing downstream can recognise, and a
    URL cut before its `@` no longer shows its user-info as such. Every place that shortens
    text from outside goes through here."""
    window = text[-(limit + SHOWN_MARGIN) :] if tail else text[: limit + SHOWN_MARGIN]
    redacted = redact_text(window, secrets)
    if len(redacted) <= limit:
        return redacted
    keep = max(0, limit - len(_CUT))
    return _CUT + redacted[len(redacted) - keep :] if tail else redacted[:keep] + _CUT


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with every URL and Authorization header redacted, and every known secret
    (given, or remembered) masked in each of its common forms."""
    for form in _longest_first(frozenset({*secrets, *_remembered})):
        text = text.replace(form, MASK)
    text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
    text = _TOKEN_FORMATS.sub(MASK, text)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


@lru_cache(maxsize=256)
def _longest_first(known: frozenset[str]) -> tuple[str, ...]:
    """Every form of the `known` secrets, longest first so that a form holding another is
    masked whole. Cached: a process redacts with the same few sets of secrets every time."""
    forms = {form for s in known if len(s) >= _MIN_SCRUB_LENGTH for form in secret_forms(s)}
    return tuple(sorted(forms, key=len, reverse=True))
