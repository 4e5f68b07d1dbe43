"""Steady synthetic traffic for the demo and the tests.

The generator is open-loop: requests are sent on a fixed schedule, not when the
previous one returns, so a slow canary cannot lower its own request rate and
hide its latency. In-flight requests are capped; a request whose turn comes
while the cap is reached (or after the loop fell more than `_LATE` seconds
behind) is counted as skipped rather than sent in a burst later.

It runs in a background thread with its own event loop, so synchronous code
(the rollout loop, tests) can drive it. It only ever sends GETs to the one URL
it is given.

    python -m safeship.demo.load --url http://127.0.0.1:8080/ --rps 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType

import aiohttp

TRACK_HEADER = "X-Safeship-Track"
_LATE = 1.0


@dataclass(frozen=True)
class LoadStats:
    """Counts so far; `by_track` counts answered requests by the track that served them."""

    sent: int
    ok: int
    failed: int
    skipped: int
    by_track: Mapping[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "by_track": dict(self.by_track),
        }


class LoadGenerator:
    """Sends `rps` GETs per second to `url` from a background thread until stopped.

    `failed` counts non-2xx answers and requests that got no answer within
    `timeout` seconds. With `record`, every answer's send time (`time.monotonic()`)
    and track are kept for `answers()`, for measuring when a split changed.
    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        url: str,
        rps: float,
        concurrency: int = 32,
        timeout: float = 5.0,
        *,
        record: bool = False,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, not {url!r}")
        if rps <= 0:
            raise ValueError(f"rps must be positive, not {rps}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.url = url
        self.rps = rps
        self.concurrency = concurrency
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sent = self._ok = self._failed = self._skipped = 0
        self._by_track: dict[str, int] = {}
        self._record = record
        self._answers: list[tuple[float, str]] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start sending; returns once the session is open. A generator runs only once."""
        if self._thread is not None:
            raise RuntimeError("a LoadGenerator can be started only once")
        self._thread = threading.Thread(target=self._run, name="safeship-load", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise RuntimeError(f"load generator could not start: {self._error}") from self._error

    def stop(self) -> LoadStats:
        """Stop scheduling, wait for in-flight requests, close the session; returns final stats."""
        if self._thread is None:
            return self.stats()
        loop, scheduler = self._loop, self._scheduler
        if loop is not None and scheduler is not None and not loop.is_closed():
            # The loop may close between the check and the call: it is then stopping anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(scheduler.cancel)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"load generator failed: {self._error}") from self._error
        return self.stats()

    def stats(self) -> LoadStats:
        with self._lock:
            return LoadStats(
                sent=self._sent,
                ok=self._ok,
                failed=self._failed,
                skipped=self._skipped,
                by_track=MappingProxyType(dict(self._by_track)),
            )

    def answers(self) -> list[tuple[float, str]]:
        """(send time, track) of every successful answer so far, when recording."""
        with self._lock:
            return list(self._answers)

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller's thread by start()/stop()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            in_flight: set[asyncio.Task[None]] = set()
            self._scheduler = asyncio.create_task(self._schedule(session, in_flight))
            self._ready.set()
            await asyncio.wait([self._scheduler])
            # Each request is bounded by the session timeout, so this ends.
            await asyncio.gather(*in_flight)
            failure = None if self._scheduler.cancelled() else self._scheduler.exception()
            if failure is not None:
                raise failure

    async def _schedule(
        self, session: aiohttp.ClientSession, in_flight: set[asyncio.Task[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rps
        due = loop.time()
        while True:
            now = loop.time()
            while due <= now:
                if now - due > _LATE or len(in_flight) >= self.concurrency:
                    with self._lock:
                        self._skipped += 1
                else:
                    task = asyncio.create_task(self._request(session))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                due += interval
            await asyncio.sleep(due - now)

    async def _request(self, session: aiohttp.ClientSession) -> None:
        sent_at = time.monotonic()
        with self._lock:
            self._sent += 1
        try:
            async with session.get(self.url, allow_redirects=False) as response:
                await response.read()
                status = response.status
                track = response.headers.get(TRACK_HEADER, "unknown")
        except (aiohttp.ClientError, TimeoutError):
            with self._lock:
                self._failed += 1
            return
        with self._lock:
            if 200 <= status < 300:
                self._ok += 1
                if self._record:
                    self._answers.append((sent_at, track))
            else:
                self._failed += 1
            self._by_track[track] = self._by_track.get(track, 0) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m safeship.demo.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--rps", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    try:
        generator = LoadGenerator(args.url, args.rps, args.concurrency, args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    started = time.monotonic()
    with generator:
        time.sleep(args.duration)
    elapsed = time.monotonic() - started
    stats = generator.stats()
    summary = {
        "url": args.url,
        "target_rps": args.rps,
        "elapsed_s": round(elapsed, 3),
        "sent_rps": round(stats.sent / args.duration, 1),
        **stats.as_dict(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
