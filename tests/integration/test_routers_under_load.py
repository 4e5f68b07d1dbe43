"""Weight shifts under load through real data planes: no request dropped, the split as asked.

At 300 requests/s (open loop) the canary weight goes 0 -> 10 -> 50 -> 100 ->
0 (the rollback) on the local proxy, HAProxy 2.6 and nginx. After each
confirmed change the answers are counted for a couple of seconds by which
slot served them: the observed canary share must be within a few points of
the weight, and no request may fail at any time, shifts included.
"""

from __future__ import annotations

import time

import pytest

from safeship.demo.load import LoadGenerator, LoadStats
from safeship.demo.rigs import RIG_KINDS, RigKind, router_rig

pytestmark = pytest.mark.integration

RATE = 300.0
WINDOW = 2.0
SETTLE = 0.2  # answers to requests sent before the change may still arrive
TOLERANCE = 3.0  # percentage points


def _share(before: LoadStats, after: LoadStats, track: str) -> tuple[float, int]:
    answered = after.ok - before.ok
    canary = after.by_track.get(track, 0) - before.by_track.get(track, 0)
    return 100.0 * canary / max(answered, 1), answered


@pytest.mark.parametrize("kind", RIG_KINDS)
def test_shifts_drop_no_request_and_split_as_asked(
    kind: RigKind, request: pytest.FixtureRequest
) -> None:
    if kind != "local":
        request.getfixturevalue(f"{kind}_installed")
    observed: list[tuple[int, float, int]] = []
    with router_rig(kind) as rig, LoadGenerator(rig.url, RATE, concurrency=64) as load:
        started = time.monotonic()
        for weight in (0, 10, 50, 100, 0):
            rig.router.set_weight(weight)
            assert rig.router.get_weight() == weight
            time.sleep(SETTLE)
            before = load.stats()
            time.sleep(WINDOW)
            share, answered = _share(before, load.stats(), rig.canary_track)
            observed.append((weight, share, answered))
        stats = load.stop()
        elapsed = time.monotonic() - started
    for weight, share, answered in observed:
        print(f"{kind}: weight {weight:3d}% -> canary {share:5.1f}% of {answered} answers")
    print(
        f"{kind}: {stats.sent} sent in {elapsed:.1f}s, {stats.failed} failed, "
        f"{stats.skipped} skipped"
    )
    assert stats.failed == 0, stats
    assert stats.ok / elapsed >= 200, f"only {stats.ok / elapsed:.0f} answers/s: {stats}"
    for weight, share, answered in observed:
        assert answered > 0
        assert abs(share - weight) <= TOLERANCE, observed
