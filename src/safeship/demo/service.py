"""The sample service that `safeship demo` and the tests deploy.

Each process is one version on one track (stable or canary). Faults are
injected from the command line (an error rate, extra latency, a crash after
so many seconds: under a supervisor that restarts it, a crash loop) so a bad
canary can be staged, and the figures a rollout judges are exposed on `/metrics` under
the names the queries expect:

    http_requests_total{service,environment,version,track,status}
    http_request_duration_seconds{service,environment,version,track}  (histogram)

Randomness is seeded from version and track (and `--seed`, so the processes of
a crash loop do not replay one life), so a run is reproducible.

Run it as `python -m safeship.demo.service --listen 127.0.0.1:8080 ...`; it
prints `ready listen=HOST:PORT` once serving (port 0 picks a free port and the
line shows the real one) and exits cleanly on SIGTERM or SIGINT. Tests and the
demo start it through `start_service`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from safeship.child import ChildHandle, ChildProcess, ChildStartError, start_child
from safeship.sample_service import LATENCY_BUCKETS

TRACKS = ("stable", "canary")
CRASH_EXIT_CODE = 70  # what a process dying of `--crash-after` exits with
# The base latency varies by up to this fraction either way, so histograms look
# like real traffic rather than one spike.
_JITTER = 0.2


@dataclass(frozen=True)
class ServiceConfig:
    """Who the service claims to be and which faults it injects."""

    service: str
    environment: str
    version: str
    track: str
    error_rate: float = 0.0
    latency_ms: float = 0.0
    base_latency_ms: float = 20.0
    crash_after: float | None = None  # seconds until the process dies (a fault)
    seed: str = ""  # mixed into the random streams: another life of the same version

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ValueError(f"track must be one of {', '.join(TRACKS)}, not {self.track!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error rate must be between 0 and 1, not {self.error_rate}")
        if self.latency_ms < 0 or self.base_latency_ms < 0:
            raise ValueError("latencies must not be negative")
        if self.crash_after is not None and not self.crash_after > 0:
            raise ValueError(
                f"crash-after must be a positive number of seconds, not {self.crash_after}"
            )


class _DemoService:
    """Request handlers plus the metrics they update, in a registry of their own.

    A private registry keeps several services in one process (tests) apart and
    keeps the exposition to exactly the two metrics the design names.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config
        seed = f"{config.version}/{config.track}{'/' + config.seed if config.seed else ''}"
        self._error_rng = random.Random(f"errors:{seed}")
        self._jitter_rng = random.Random(f"jitter:{seed}")
        self.registry = CollectorRegistry(auto_describe=True)
        identity = {
            "service": config.service,
            "environment": config.environment,
            "version": config.version,
            "track": config.track,
        }
        self._requests = Counter(
            "http_requests",
            "HTTP requests served, by status code.",
            [*identity, "status"],
            registry=self.registry,
        )
        # Children are resolved once: label lookup is the costly part of an update.
        self._ok = self._requests.labels(**identity, status="200")
        self._failed = self._requests.labels(**identity, status="500")
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to answering it.",
            list(identity),
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        ).labels(**identity)
        # Each answer names the version that gave it, errors too: tests read who answered.
        self._ok_body = f"ok {config.version}\n"
        self._error_body = f"injected error {config.version}\n"

    async def serve(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        config = self._config
        jitter = self._jitter_rng.uniform(1.0 - _JITTER, 1.0 + _JITTER)
        await asyncio.sleep((config.base_latency_ms * jitter + config.latency_ms) / 1000.0)
        if config.error_rate > 0 and self._error_rng.random() < config.error_rate:
            response = web.Response(status=500, text=self._error_body)
            counter = self._failed
        else:
            response = web.Response(text=self._ok_body)
            counter = self._ok
        counter.inc()
        self._duration.observe(time.perf_counter() - started)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def create_app(config: ServiceConfig) -> web.Application:
    """The aiohttp application for one version; every path but the two below is 'the service'."""
    service = _DemoService(config)
    app = web.Application()
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/metrics", service.metrics)
    app.router.add_get("/{path:.*}", service.serve)
    return app


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) -> (host, port); port 0 means any free port."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must be HOST:PORT, not {listen!r}")
    return host, int(port_text)


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _serve(config: ServiceConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Access logging would cost more than the request itself at demo load.
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(
            f"ready listen={_format_address(bound_host, bound_port)} service={config.service} "
            f"version={config.version} track={config.track}",
            flush=True,
        )
        if config.crash_after is not None:
            # A crash, not a shutdown: requests in flight die with the process.
            loop.call_later(config.crash_after, os._exit, CRASH_EXIT_CODE)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None, prog: str = "python -m safeship.demo.service") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--service", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--track", required=True, choices=TRACKS)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests failed")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="extra latency (a fault)")
    parser.add_argument("--base-latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--crash-after", type=float, default=None, help="die after this many seconds (a fault)"
    )
    parser.add_argument("--seed", default="", help="another random stream for the same version")
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        config = ServiceConfig(
            service=args.service,
            environment=args.environment,
            version=args.version,
            track=args.track,
            error_rate=args.error_rate,
            latency_ms=args.latency_ms,
            base_latency_ms=args.base_latency_ms,
            crash_after=args.crash_after,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    # The process owns this global switch; `_created` series would only add noise.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        asyncio.run(_serve(config, host, port))
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


class ServiceProcess(ChildHandle):
    """A running demo service child; `stop()` (or leaving the `with` block) always reaps it."""

    def __init__(self, child: ChildProcess) -> None:
        self._child = child
        self.listen = child.ready["listen"]
        host, port = parse_listen(self.listen)
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        self.url = f"http://{_format_address(host, port)}"
        self.metrics_url = f"{self.url}/metrics"

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code. Safe to repeat."""
        return self._child.stop(timeout)

    def stderr_tail(self, limit: int = 2000) -> str:
        """The end of what the child wrote to stderr, for error messages."""
        return self._child.stderr_tail(limit)


def start_service(
    listen: str,
    service: str,
    environment: str,
    version: str,
    track: str,
    error_rate: float = 0.0,
    latency_ms: float = 0.0,
    ready_timeout: float = 10.0,
    base_latency_ms: float = 20.0,
    crash_after: float | None = None,
    seed: str = "",
) -> ServiceProcess:
    """Start `python -m safeship.demo.service` and wait until it is serving.

    Pass port 0 (`127.0.0.1:0`) to get a free port without a race; the returned
    `url` carries the real one. Raises `RuntimeError` with the child's stderr
    tail if it exits or is not ready within `ready_timeout` seconds.
    """
    # Checked here too, so a mistake is a ValueError now rather than a usage error in a child.
    ServiceConfig(
        service,
        environment,
        version,
        track,
        error_rate,
        latency_ms,
        base_latency_ms,
        crash_after,
        seed,
    )
    parse_listen(listen)
    args = [
        f"--listen={listen}",
        f"--service={service}",
        f"--environment={environment}",
        f"--version={version}",
        f"--track={track}",
        f"--error-rate={error_rate}",
        f"--latency-ms={latency_ms}",
        f"--base-latency-ms={base_latency_ms}",
        *([f"--crash-after={crash_after}"] if crash_after is not None else []),
        *([f"--seed={seed}"] if seed else []),
    ]
    try:
        child = start_child("safeship.demo.service", args, ("listen",), ready_timeout)
    except ChildStartError as exc:
        raise RuntimeError(
            f"demo service {service} {version} ({track}) on {listen} {exc}: "
            f"{exc.stderr_tail or 'no stderr output'}"
        ) from None
    return ServiceProcess(child)


if __name__ == "__main__":
    sys.exit(main())
