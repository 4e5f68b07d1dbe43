"""The `local` router's data plane: a weighted HTTP reverse proxy on loopback.

It runs as its own process, apart from the controller, so a controller that
dies mid-rollout leaves traffic exactly where it was; the controller only
talks to its small JSON admin API. Run it as::

    python -m safeship.routers.local_proxy --listen 127.0.0.1:8080 \\
        --admin 127.0.0.1:8081 --stable http://127.0.0.1:9001 \\
        --canary http://127.0.0.1:9002 [--weight 0] [--state-file PATH]

Only origin-form requests (`GET /path?query`) are forwarded, to the chosen
upstream's own scheme, host and port, with its credentials (the user and
password in its URL) as the `Authorization` header; CONNECT and absolute- or
authority-form targets (`GET http://other/`, `CONNECT host:port`) are refused
and counted as `bad_requests`, so no request can reach another host. A request
that does not parse is a counted 400 too, and a debug line, never a traceback.

Admin API: `GET /healthz`, `GET /weights`, `PUT /weights`
`{"canary_weight": 0..100}` and `PUT /upstreams`
`{"stable"?, "canary"?, "canary_weight"?}` (one change, applied at once: a
promotion swaps the tracks and zeroes the weight in one step); every
successful PUT answers with the same body as `GET /weights` so the caller can
confirm what is now in force.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from yarl import URL

from safeship.config import http_url
from safeship.files import write_atomically
from safeship.loopback import is_loopback
from safeship.redact import redact_url

Track = Literal["stable", "canary"]
TRACKS: tuple[Track, ...] = ("stable", "canary")
TRACK_HEADER = "X-Safeship-Track"

# RFC 9110 section 7.6.1: these describe one connection, never the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The upstream gets its own Host (as nginx does by default); `Expect` is
# answered here, since the body is already on its way when we connect upstream.
# The auto headers are ones aiohttp would invent; a transparent proxy adds none.
_REQUEST_SKIP = HOP_BY_HOP | {"host", "expect"}
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

UPSTREAM_CONNECT_TIMEOUT = 5.0
"""Loopback connects are instant; a slow one means the upstream is gone."""
UPSTREAM_READ_TIMEOUT = 60.0
"""Bounds a hung upstream so it cannot pin proxy connections forever."""
UPSTREAM_POOL_SIZE = 512
SHUTDOWN_GRACE = 5.0
"""How long SIGTERM waits for in-flight requests before closing them."""
ADMIN_TOKEN_ENV = "SAFESHIP_ADMIN_TOKEN"

# RFC 9112 section 3.2.1: absolute-path ["?" query], in visible ASCII. No "#": a fragment
# is never part of a request target.
_ORIGIN_FORM = re.compile(r"/[\x21\x22\x24-\x7e]*")
# What a 405 for CONNECT advertises: every other method is forwarded as it comes.
_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

log = logging.getLogger("safeship.router")


class StartupError(Exception):
    """A busy port, or an unreadable state file: the proxy refuses to guess a weight."""

    exit_code = 1


@dataclass(frozen=True)
class Upstream:
    """An upstream URL taken apart once: where requests go, and the credentials they carry.

    A request's path and query are joined to its parts, never pasted onto its URL, so
    no request target can name another host; its user and password go only to it, as
    the `Authorization` header, never in a URL.
    """

    scheme: str
    authority: str  # host and port, without the user and password
    path: str  # the base path, encoded, without a trailing "/"
    authorization: str | None  # HTTP Basic from the URL's user and password, if it has them

    @classmethod
    def parse(cls, url: str) -> Upstream:
        """Raises ValueError for a URL that cannot be connected to (no host, a bad port)."""
        parsed = URL(url)
        if not parsed.raw_host:
            raise ValueError("no host")
        authorization = None
        if parsed.raw_user is not None or parsed.raw_password is not None:
            user, password = parsed.user or "", parsed.password or ""
            if ":" in user:
                raise ValueError("basic auth cannot send a user name with ':' in it")
            # UTF-8: the one charset RFC 7617 names.
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        bare = parsed.with_user(None)
        return cls(bare.scheme, bare.raw_authority, bare.raw_path.rstrip("/"), authorization)

    def url_for(self, target: str) -> URL:
        """The URL for an origin-form request target, its path and query as they came."""
        path, _, query = target.partition("?")
        return URL.build(
            scheme=self.scheme,
            authority=self.authority,
            path=self.path + path,
            query_string=query,
            encoded=True,
        )


def parse_upstream(value: object, field_name: str) -> str:
    """Return `value` as a normalised http(s) base URL, or raise ValueError naming the field."""
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be an http(s) URL string")
    shown = redact_url(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field_name} must be an http(s) URL with a host, got {shown!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{field_name} must not have a query or fragment, got {shown!r}")
    try:
        http_url(value)  # what every URL setting must be (a host DNS can have, ...)
        Upstream.parse(value)
    except ValueError as exc:
        raise ValueError(f"{field_name} is not a usable URL ({exc}): {shown}") from None
    return value.rstrip("/")


def parse_weight(value: object) -> int:
    """Return `value` as a canary weight, or raise ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"canary_weight must be an integer from 0 to 100, got {value!r}")
    return value


@dataclass
class RouteTable:
    """Weight, upstreams and counters.

    Only the event loop thread touches it and `choose` never awaits, so no lock
    is needed and a weight change takes effect on the very next request while
    in-flight ones keep the upstream they already picked.
    """

    canary_weight: int
    upstreams: dict[Track, str]
    requests: dict[Track, int] = field(default_factory=lambda: dict.fromkeys(TRACKS, 0))
    upstream_errors: dict[Track, int] = field(default_factory=lambda: dict.fromkeys(TRACKS, 0))
    client_disconnects: int = 0  # clients that left before their answer ended
    bad_requests: int = 0  # refused before routing: unparseable, a CONNECT, or no path
    _position: int = 0
    targets: dict[Track, Upstream] = field(init=False)  # `upstreams`, taken apart

    def __post_init__(self) -> None:
        self.targets = {track: Upstream.parse(url) for track, url in self.upstreams.items()}

    def choose(self) -> Track:
        """Pick the track for the next request.

        A Bresenham-style counter rather than random sampling: in every run of
        100 consecutive requests exactly `canary_weight` go to the canary,
        spread evenly, so even a short analysis window sees the intended share.
        """
        position, weight = self._position, self.canary_weight
        canary = (position + 1) * weight // 100 > position * weight // 100
        self._position = (position + 1) % 100
        track: Track = "canary" if canary else "stable"
        self.requests[track] += 1
        return track

    def config(self) -> dict[str, Any]:
        """What the state file persists."""
        return {
            "canary_weight": self.canary_weight,
            "stable": self.upstreams["stable"],
            "canary": self.upstreams["canary"],
        }

    def apply(self, config: Mapping[str, Any]) -> None:
        """Take a validated config; restart the spread only when the weight really changed."""
        if config["canary_weight"] != self.canary_weight:
            self.canary_weight = config["canary_weight"]
            self._position = 0
        self.upstreams = {track: config[track] for track in TRACKS}
        self.targets = {track: Upstream.parse(config[track]) for track in TRACKS}

    def snapshot(self) -> dict[str, Any]:
        """The body of `GET /weights` (upstream URLs without their passwords)."""
        return {
            **self.config(),
            **{track: redact_url(self.upstreams[track]) for track in TRACKS},
            "requests": dict(self.requests),
            "upstream_errors": dict(self.upstream_errors),
            "client_disconnects": self.client_disconnects,
            "bad_requests": self.bad_requests,
        }


def validate_config(config: object) -> dict[str, Any]:
    """Check a full config (from the state file) and normalise it."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    result: dict[str, Any] = {"canary_weight": parse_weight(config.get("canary_weight"))}
    for track in TRACKS:
        result[track] = parse_upstream(config.get(track), track)
    return result


class StateFile:
    """The last weight and upstreams on disk, so a restarted proxy keeps routing as before."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved config, None if there is none yet; StartupError if it is unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StartupError(f"cannot read state file {self.path}: {exc}") from exc
        try:
            return validate_config(json.loads(text))
        except ValueError as exc:
            raise StartupError(f"state file {self.path} is invalid: {exc}") from exc

    def save(self, config: Mapping[str, Any]) -> None:
        """Write atomically: a crash mid-write leaves the previous file, never a torn one."""
        # Upstream URLs may carry credentials: readable by this user only.
        write_atomically(self.path, json.dumps(config).encode(), private=True)


def _forwardable(headers: Mapping[str, str], skip: frozenset[str]) -> CIMultiDict[str]:
    """Copy end-to-end headers; `Connection` may name extra hop-by-hop ones."""
    named = headers.get("Connection")
    if named:
        skip = skip | {token.strip().lower() for token in named.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in skip)


def _gateway_error(track: Track, exc: BaseException) -> web.Response:
    status, what = (504, "timed out") if isinstance(exc, TimeoutError) else (502, "unreachable")
    return web.Response(
        status=status,
        text=f"safeship: {track} upstream {what}\n",
        headers={TRACK_HEADER: track},
    )


def _abort(request: web.BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """Cut the client connection once the status line has gone out.

    A truncated response is then the only honest signal left, and aiohttp
    finishes a closed connection quietly instead of logging a traceback.
    """
    response.force_close()
    if request.transport is not None:
        request.transport.close()
    return response


class LocalProxy:
    """The proxy handler and the admin API over one shared route table."""

    def __init__(
        self, table: RouteTable, state_file: StateFile | None, admin_token: str | None = None
    ) -> None:
        self.table = table
        self.state_file = state_file
        self.admin_token = admin_token
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """One pooled session for all upstream traffic: reusing connections is the hot path."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=UPSTREAM_POOL_SIZE),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=UPSTREAM_CONNECT_TIMEOUT,
                sock_read=UPSTREAM_READ_TIMEOUT,
            ),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            # A shared jar would replay one client's cookies for every other client.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Forward one request to the chosen upstream and stream the answer back."""
        assert self._session is not None, "open() first"
        if request.method == "CONNECT":
            return self._refuse(405, "CONNECT is not proxied", {"Allow": _ALLOW})
        if not _ORIGIN_FORM.fullmatch(request.raw_path):
            return self._refuse(400, "only a path and query are proxied, not a URL or a host")
        track = self.table.choose()
        target = self.table.targets[track]
        headers = _forwardable(request.headers, _REQUEST_SKIP)
        if target.authorization is not None:
            # The upstream's own credentials: they replace any the client sent.
            headers["Authorization"] = target.authorization
        if request.headers.get("Expect", "").lower() == "100-continue":
            with contextlib.suppress(ConnectionError):  # gone already: the request fails below
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            upstream = await self._session.request(
                request.method,
                target.url_for(request.raw_path),
                headers=headers,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.table.upstream_errors[track] += 1
            return _gateway_error(track, exc)
        async with upstream:
            return await self._relay(request, upstream, track)

    def _refuse(
        self, status: int, reason: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """Answer a request that is not for the upstreams; its connection is closed after.

        The client's mistake, so a counter and a debug line, never an error in the log.
        """
        self.table.bad_requests += 1
        log.debug("refused a request: %s", reason)
        response = web.Response(status=status, text=f"safeship: {reason}\n", headers=headers)
        response.force_close()
        return response

    async def _relay(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, track: Track
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=_forwardable(upstream.headers, HOP_BY_HOP),
        )
        response.headers[TRACK_HEADER] = track
        try:
            await response.prepare(request)
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, TimeoutError):
                    self.table.upstream_errors[track] += 1
                    return _abort(request, response)
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            # The client left mid-answer (a browser's stop, a balancer's timeout): everyday
            # traffic, not an error of either version. Leaving the block closes the upstream.
            self.table.client_disconnects += 1
            return _abort(request, response)
        return response

    def admin_app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorised])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/weights", self._get_weights)
        app.router.add_put("/weights", self._put_weights)
        app.router.add_put("/upstreams", self._put_upstreams)
        return app

    @web.middleware
    async def _authorised(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """With a token, every admin call but /healthz must carry `Authorization: Bearer TOKEN`.

        Without one (loopback only), the Host must name loopback too: a web page whose name
        was rebound to 127.0.0.1 (DNS rebinding) cannot move the traffic.
        """
        if self.admin_token is None:
            if not is_loopback(_host_name(request.host)):
                raise web.HTTPForbidden(
                    text="admin API: the Host header does not name this machine's loopback\n"
                )
        elif request.path != "/healthz":
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            expected = self.admin_token.encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
                raise web.HTTPUnauthorized(
                    text="admin API: send Authorization: Bearer <the admin token>\n",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _get_weights(self, _request: web.Request) -> web.Response:
        return web.json_response(self.table.snapshot())

    async def _put_weights(self, request: web.Request) -> web.Response:
        body = await _json_object(request, allowed={"canary_weight"})
        try:
            weight = parse_weight(body.get("canary_weight"))
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        return self._change({"canary_weight": weight})

    async def _put_upstreams(self, request: web.Request) -> web.Response:
        body = await _json_object(request, allowed={*TRACKS, "canary_weight"})
        if not set(body) & set(TRACKS):
            raise _bad_request("give at least one of 'stable' or 'canary'")
        try:
            changes: dict[str, Any] = {
                track: parse_upstream(url, track) for track, url in body.items() if track in TRACKS
            }
            if "canary_weight" in body:
                changes["canary_weight"] = parse_weight(body["canary_weight"])
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        return self._change(changes)

    def _change(self, changes: Mapping[str, Any]) -> web.Response:
        """Persist first, then apply, so memory never runs ahead of what a restart would load."""
        config = {**self.table.config(), **changes}
        if self.state_file is not None:
            try:
                self.state_file.save(config)
            except OSError as exc:
                return web.json_response({"error": f"could not save state file: {exc}"}, status=500)
        self.table.apply(config)
        return web.json_response(self.table.snapshot())


class _ProxyConnection(web.RequestHandler):
    """One client connection of the proxy port: what aiohttp cannot parse is a counted 400.

    aiohttp logs every request it cannot parse (`GET /a b`, a byte that is not ASCII)
    with a traceback; that is the client's mistake, so a counter and a debug line. An
    error of the proxy's own is one line in the log, never a traceback either.
    """

    __slots__ = ("_table",)

    def __init__(self, manager: web.Server, table: RouteTable, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._table = table

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == 400:  # aiohttp's status for a request it could not parse
            self._table.bad_requests += 1
            log.debug("refused a request that does not parse: %s", message)
            text = "safeship: bad request\n"
        else:
            log.error(
                "answered HTTP %d after an unexpected %s (a bug in safeship: please report it)",
                status,
                "timeout" if exc is None else repr(exc),  # aiohttp passes none for a timeout
            )
            log.debug("where it happened", exc_info=exc)
            text = f"safeship: HTTP {status}\n"
        if request.writer.output_size > 0:
            # The answer has begun: all that is left is to cut the connection, quietly.
            raise ConnectionError("an answer is under way")
        response = web.Response(status=status, text=text)
        response.force_close()
        return response


class _ProxyServer(web.Server):
    """The proxy port's server, whose connections are `_ProxyConnection`s."""

    def __init__(self, proxy: LocalProxy) -> None:
        super().__init__(proxy.handle)
        self._table = proxy.table

    def __call__(self) -> web.RequestHandler:
        # The body goes to the upstream as the client sent it, Content-Encoding and all: a
        # body decompressed here would no longer fit its Content-Length (request smuggling).
        return _ProxyConnection(
            self,
            self._table,
            loop=asyncio.get_running_loop(),
            access_log=None,
            auto_decompress=False,
        )


class _UnparsedRequestsQuiet(logging.Filter):
    """The admin port's aiohttp logs a request it cannot parse (`GET /a b`) with a traceback
    and answers 400: the client's mistake, so a debug line instead (the proxy port's own
    connections say so themselves, see `_ProxyConnection`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.debug("admin: refused a request that does not parse: %s", exc)
            return False
        return True


def _host_name(host: str) -> str:
    """The name in a Host header: `[::1]:8081` -> `::1`, `localhost:8081` -> `localhost`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, _ = host.rpartition(":")
    return name if colon else host


MAX_ADMIN_BODY = 64 * 1024


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _json_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The body as a JSON object: read whole (at most 64 KiB), as UTF-8, never decompressed
    nor decoded by a charset the client names; anything else is a 400, never a 500."""
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise _bad_request("send the body without Content-Encoding")
    try:
        raw = await request.content.read(MAX_ADMIN_BODY + 1)
        if len(raw) > MAX_ADMIN_BODY:
            raise _bad_request(f"body larger than {MAX_ADMIN_BODY} bytes")
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError, web.RequestPayloadError):
        raise _bad_request("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad_request(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return body


def parse_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` or bare `PORT` (host 127.0.0.1); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _upstream_arg(name: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        try:
            return parse_upstream(value, name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _weight_arg(value: str) -> int:
    if not value.isdigit() or int(value) > 100:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 100, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m safeship.routers.local_proxy",
        description="Weighted stable/canary HTTP reverse proxy with a JSON admin API.",
    )
    parser.add_argument("--listen", required=True, type=parse_address, help="HOST:PORT to proxy")
    parser.add_argument("--admin", required=True, type=parse_address, help="HOST:PORT for admin")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --admin listen beyond loopback; then the admin API needs a token",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file holding the admin API's bearer token (or ${ADMIN_TOKEN_ENV})",
    )
    parser.add_argument("--stable", required=True, type=_upstream_arg("stable"), help="base URL")
    parser.add_argument("--canary", required=True, type=_upstream_arg("canary"), help="base URL")
    parser.add_argument("--weight", type=_weight_arg, default=0, help="canary %% (default 0)")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="persist weight and upstreams here; once it exists it wins over the flags",
    )
    return parser


class UnsafeStartError(StartupError):
    """A start refused because it would expose the admin API: bad usage, exit 2."""

    exit_code = 2


def admin_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The admin token, if any; refuses an admin API beyond loopback without one.

    The admin API can move all traffic, so it stays on loopback unless the operator
    says otherwise twice: a non-loopback --admin *and* --allow-remote; then a token
    is required too.
    """
    token: str | None = None
    if args.admin_token_file is not None:
        try:
            token = args.admin_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(
                f"cannot read --admin-token-file {args.admin_token_file}: {exc}"
            ) from exc
        if not token:
            raise StartupError(f"--admin-token-file {args.admin_token_file} is empty")
    else:
        token = environ.get(ADMIN_TOKEN_ENV) or None
    host = args.admin[0]
    if not is_loopback(host):
        if not args.allow_remote:
            raise UnsafeStartError(
                f"--admin {host}:{args.admin[1]} is not a loopback address, and the admin API "
                "can move all traffic: keep it on 127.0.0.1, or pass --allow-remote with a "
                f"token (--admin-token-file FILE or ${ADMIN_TOKEN_ENV})"
            )
        if token is None:
            raise UnsafeStartError(
                f"--allow-remote needs a token for the admin API: --admin-token-file FILE "
                f"or ${ADMIN_TOKEN_ENV}"
            )
    return token


def _initial_table(args: argparse.Namespace, state_file: StateFile | None) -> RouteTable:
    """The saved state if there is one, else the flags (saved at once, so a restart keeps them)."""
    config = state_file.load() if state_file is not None else None
    if config is None:
        config = {"canary_weight": args.weight, "stable": args.stable, "canary": args.canary}
        if state_file is not None:
            try:
                state_file.save(config)
            except OSError as exc:
                raise StartupError(f"cannot write state file {state_file.path}: {exc}") from exc
    return RouteTable(config["canary_weight"], {track: config[track] for track in TRACKS})


async def _start(runner: web.BaseRunner, address: tuple[str, int]) -> str:
    """Listen on exactly `address` and return the bound `HOST:PORT` (port 0 resolved)."""
    await runner.setup()
    try:
        await web.TCPSite(runner, *address).start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {address[0]}:{address[1]}: {exc}") from exc
    host, port = runner.addresses[0][:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight requests and exit."""
    state_file = StateFile(args.state_file) if args.state_file else None
    token = admin_token(args, os.environ)
    proxy = LocalProxy(_initial_table(args, state_file), state_file, token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logging.getLogger("aiohttp.server").addFilter(_UnparsedRequestsQuiet())
    proxy_runner = web.ServerRunner(_ProxyServer(proxy), shutdown_timeout=SHUTDOWN_GRACE)
    admin_runner = web.AppRunner(
        proxy.admin_app(), access_log=None, shutdown_timeout=1.0, auto_decompress=False
    )
    async with contextlib.AsyncExitStack() as cleanup:
        await proxy.open()
        cleanup.push_async_callback(proxy.close)
        cleanup.push_async_callback(proxy_runner.cleanup)
        listen = await _start(proxy_runner, args.listen)
        cleanup.push_async_callback(admin_runner.cleanup)
        admin = await _start(admin_runner, args.admin)
        print(f"ready listen={listen} admin={admin}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(serve(args))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
