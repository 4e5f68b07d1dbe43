"""Deadlines for whole requests: connect, send and every read, together.

An HTTP client's timeouts bound each socket operation, so a server that
answers one byte every 0.4 s (a wedged exporter, a proxy trickling an error
page) never trips a 5 s read timeout and holds a rollout forever. Here every
request gets one deadline for all of it: the network streams of a client's
connection pools take the time left from the deadline of the request being
served, so a slow drip fails like any other timeout (`httpx.ReadTimeout`,
naming the deadline) once the deadline is reached, wherever it is in the
exchange.

The deadline is set when the client sends a request (a `request` event hook)
and read by the streams in the same thread; httpx clients are used from one
thread at a time here. `call_with_deadline` does the same for a library whose
client cannot be reached (lightkube), by giving up on the call.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import ssl
import time
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import httpcore
import httpx

T = TypeVar("T")

# (monotonic deadline, the seconds it allows) of the request being served in this context
_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "safeship_request_deadline", default=None
)
_ERRORS: dict[str, type[httpcore.TimeoutException]] = {
    "connect": httpcore.ConnectTimeout,
    "write": httpcore.WriteTimeout,
    "read": httpcore.ReadTimeout,
}


class DeadlineExceeded(Exception):
    """A call given up on at its deadline (see `call_with_deadline`)."""


def _remaining(timeout: float | None, operation: str) -> float | None:
    """The timeout for one operation: the configured one, cut to what the deadline leaves."""
    current = _DEADLINE.get()
    if current is None:
        return timeout
    left = current[0] - time.monotonic()
    if left <= 0:
        raise _past_deadline(operation, current[1])
    return left if timeout is None else min(timeout, left)


def _past_deadline(operation: str, seconds: float) -> httpcore.TimeoutException:
    return _ERRORS[operation](f"no complete answer within the {seconds:g}s deadline ({operation})")


def _bounded(operation: str, call: Callable[[float | None], T], timeout: float | None) -> T:
    """Run one stream operation; a timeout at the deadline says it was the deadline."""
    try:
        return call(_remaining(timeout, operation))
    except httpcore.TimeoutException:
        current = _DEADLINE.get()
        if current is not None and time.monotonic() >= current[0]:
            raise _past_deadline(operation, current[1]) from None
        raise


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded("read", lambda t: self._inner.read(max_bytes, t), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded("write", lambda t: self._inner.write(buffer, t), timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = _bounded(
            "connect", lambda t: self._inner.start_tls(ssl_context, server_hostname, t), timeout
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens connections whose streams honour request deadlines."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            "connect",
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
            timeout,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            "connect", lambda t: self._inner.connect_unix_socket(path, t, socket_options), timeout
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound_by_deadline(client: httpx.Client, seconds: float) -> httpx.Client:
    """Give every request `client` sends one deadline, `seconds` after it starts.

    The client's transports (its own and those mounted for proxies) get
    connection pools whose streams honour the deadline. httpx does not let a
    network backend be passed in, so the pools' backend is swapped here; a
    test drives a slow-drip server through it, so a change in httpx shows.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]

    def start_deadline(request: httpx.Request) -> None:
        _DEADLINE.set((time.monotonic() + seconds, seconds))

    client.event_hooks["request"] = [start_deadline, *client.event_hooks["request"]]
    return client


def call_with_deadline(call: Callable[[], T], seconds: float, what: str) -> T:
    """`call()`, or `DeadlineExceeded` once `seconds` have passed without an answer.

    For clients built inside a library: the call runs in a worker thread that
    is abandoned at the deadline (it ends when its own connection does).
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="deadline")
    future = pool.submit(contextvars.copy_context().run, call)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        raise DeadlineExceeded(f"{what}: no complete answer within {seconds:g}s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
