"""Routers under load: how fast a weight change, and a rollback, take effect on real traffic.

Usage:
    python benchmarks/routers.py [--rps 400] [--repeats 10] [--routers local,haproxy,nginx]

For each router (the local proxy, HAProxy 2.6 through its Runtime API, nginx
through an include file, `nginx -t` and a graceful reload), the data plane runs
for real in front of two loopback upstreams while an open-loop load generator
sends `--rps` GETs per second and records, for every answer, when its request
was sent and which slot served it. Each repeat then measures, side by side on
the same machine in one run:

  shift     canary weight 0 -> 50: from the `set_weight` call until the first
            request routed to the canary was sent (traffic really moved);
  confirm   the same change: until `set_weight` returned and `get_weight` read 50
            back from the router (what the controller waits for);
  drain     50 -> 0, the rollback decision: until the last request routed to the
            canary was sent; after that moment no request reaches it (0% canary);
  rollback  the same rollback until it is both drained and confirmed by the
            router (the controller records the rollback only then).

At 400 requests/s one request leaves every 2.5 ms, which bounds the resolution
of `shift` and `rollback`. The target: HAProxy rolls back in under one second
(p95 and max). Ratios are against the local proxy measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from safeship.demo.load import LoadGenerator
from safeship.demo.rigs import RIG_KINDS, RigKind, RouterRig, router_rig

ROLLBACK_TARGET_S = 1.0
_QUIET = 0.3  # seconds of traffic between changes, so each change starts from a steady split


@dataclass
class Timings:
    shift: list[float]
    confirm: list[float]
    drain: list[float]
    rollback: list[float]
    sent: int = 0
    failed: int = 0


def _measure(rig: RouterRig, load: LoadGenerator, repeats: int) -> Timings:
    timings = Timings([], [], [], [])
    router = rig.router
    router.set_weight(0)
    for _ in range(repeats):
        time.sleep(_QUIET)
        called = time.monotonic()
        router.set_weight(50)
        if router.get_weight() != 50:
            raise RuntimeError(f"{rig.kind}: weight 50 not confirmed")
        confirmed = time.monotonic()
        time.sleep(_QUIET)
        first = min(
            (
                sent
                for sent, track in load.answers()
                if sent >= called and track == rig.canary_track
            ),
            default=None,
        )
        if first is None:
            raise RuntimeError(f"{rig.kind}: no request reached the canary at weight 50")
        timings.shift.append(first - called)
        timings.confirm.append(confirmed - called)

        called = time.monotonic()
        router.set_weight(0)  # what a rollback does to the traffic
        if router.get_weight() != 0:
            raise RuntimeError(f"{rig.kind}: rollback to 0 not confirmed")
        confirmed = time.monotonic()
        time.sleep(_QUIET + 0.2)  # answers to the last canary requests arrive
        last = max(
            (sent for sent, track in load.answers() if track == rig.canary_track),
            default=called,
        )
        timings.drain.append(max(last - called, 0.0))
        timings.rollback.append(max(last, confirmed) - called)
    return timings


def run(kind: RigKind, rps: float, repeats: int) -> Timings:
    with router_rig(kind) as rig, LoadGenerator(rig.url, rps, concurrency=64, record=True) as load:
        timings = _measure(rig, load, repeats)
        stats = load.stop()
    timings.sent, timings.failed = stats.sent, stats.failed
    return timings


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(results: dict[RigKind, Timings], rps: float, repeats: int) -> tuple[list[str], bool]:
    lines = [
        f"router weight changes under {rps:g} requests/s, {repeats} repeats each "
        "(milliseconds: median / p95 / max)",
        "",
        f"{'router':<9}{'shift 0->50':>20}{'confirm 0->50':>20}{'drain 50->0':>20}"
        f"{'rollback 50->0':>20}{'sent':>8}{'failed':>8}",
    ]
    for kind, t in results.items():
        cells = [
            f"{statistics.median(v) * 1000:.0f} / {_p95(v) * 1000:.0f} / {max(v) * 1000:.0f}"
            for v in (t.shift, t.confirm, t.drain, t.rollback)
        ]
        row = "".join(f"{cell:>20}" for cell in cells)
        lines.append(f"{kind:<9}{row}{t.sent:>8}{t.failed:>8}")
    base = results.get("local")
    if base is not None:
        lines += ["", "median rollback time relative to the local proxy (same run):"]
        for kind, t in results.items():
            ratio = statistics.median(t.rollback) / statistics.median(base.rollback)
            lines.append(f"  {kind:<9} x{ratio:.2f}")
    passed = True
    lines.append("")
    if "haproxy" in results:
        worst = max(results["haproxy"].rollback)
        ok = worst < ROLLBACK_TARGET_S
        passed = ok
        lines.append(
            f"target: HAProxy rollback to 0% canary under {ROLLBACK_TARGET_S:g} s: "
            f"max {worst * 1000:.0f} ms: {'PASS' if ok else 'FAIL'}"
        )
    failed = sum(t.failed for t in results.values())
    lines.append(
        f"target: no failed request during shifts: {failed} failed: "
        f"{'PASS' if failed == 0 else 'FAIL'}"
    )
    return lines, passed and failed == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=400.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--routers", default=",".join(RIG_KINDS))
    args = parser.parse_args(argv)
    requested = {k.strip() for k in args.routers.split(",") if k.strip()}
    unknown = requested - set(RIG_KINDS)
    if unknown or not requested or args.repeats < 1:
        parser.error(f"--routers takes {', '.join(RIG_KINDS)}; --repeats at least 1")
    kinds = [kind for kind in RIG_KINDS if kind in requested]
    results = {kind: run(kind, args.rps, args.repeats) for kind in kinds}
    lines, passed = report(results, args.rps, args.repeats)
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
