"""One way to make outgoing HTTP calls: deadlines, retries with backoff, auth, TLS.

Every client safeship builds comes from `make_client`, and every call that may
be retried goes through `with_retries`, so the retry policy (exponential
backoff with full jitter, honouring `Retry-After`) lives in one place. A
client's `timeout` is a deadline for each whole request (connect, send and
every read), so a server trickling its answer fails like one that is silent.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from safeship.deadlines import bound_by_deadline
from safeship.errors import TransientError

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to base x 2^n, capped."""

    retries: int = 3
    base: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap * 3)
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `call`, retrying `TransientError`s per `policy`; the last error is raised."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as exc:
            if attempt >= policy.retries:
                raise
            sleep(policy.delay(attempt, exc.retry_after, rng))
            attempt += 1


def make_client(
    base_url: str = "",
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    ca_file: Path | None = None,
    transport: httpx.BaseTransport | None = None,
    trust_env: bool = True,
) -> httpx.Client:
    """An httpx client with TLS verification on (a custom CA if given), no redirects, and
    `timeout` as the deadline of every whole request.

    `trust_env=False` for loopback admin endpoints: an HTTP(S)_PROXY meant for
    the internet must not capture them.
    """
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
    client = httpx.Client(
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        auth=auth,
        verify=verify,
        transport=transport,
        follow_redirects=False,
        trust_env=trust_env,
    )
    return bound_by_deadline(client, timeout)
