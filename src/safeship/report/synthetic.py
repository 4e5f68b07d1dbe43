"""Synthetic deployment history, for the report's tests and benchmark.

`generate_history` writes `n` deployments spread evenly at random over `days` days
before `end`, across a few services and two environments, with one smoke test each,
lead times from a log-normal around two hours (5% without a commit time), roughly 93%
promoted and a mix of rollbacks (mostly by analysis), aborts, failures and unfinished
rollouts; the newest `traced` promotions and rollbacks by analysis also get the rollout
states and decisions a real rollout stores, so canary traces have something to draw.
Rows are written with Core executemany in batches: a million deployments load in about
half a minute on SQLite.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, insert
from sqlalchemy.engine import Connection

from safeship.metrics.names import PROMETHEUS_QUERY_TOTAL
from safeship.report.period import DAY
from safeship.report.queries import ANALYSIS_REASONS
from safeship.store import open_store
from safeship.store.interface import canonical_labels
from safeship.store.sql import counters, decisions, deployments, rollout_states, smoke_tests

SERVICES = tuple(f"service-{index:02d}" for index in range(8))
ENVIRONMENTS = ("staging", "production")
STEPS = (10, 50, 100)
_BATCH = 20_000
# (outcome, reason, weight) and their relative frequency.
_ENDINGS: tuple[tuple[tuple[str | None, str | None, int], float], ...] = (
    (("promoted", None, 100), 93.0),
    (("rolled_back", "high_error_rate", 10), 2.0),
    (("rolled_back", "high_latency", 50), 1.0),
    (("rolled_back", "smoke_test_failed", 0), 0.8),
    (("rolled_back", "manual", 50), 0.5),
    (("aborted", "manual", 10), 0.7),
    (("failed", "router_error", 10), 1.0),
    (("paused", None, 50), 0.5),
    ((None, None, 10), 0.5),
)


def generate_history(
    store_url: str, n: int, days: float, seed: int, *, end: float, traced: int = 20
) -> None:
    """Add `n` synthetic deployments (started in `[end - days, end)`) to the store."""
    open_store(store_url).close()  # creates and migrates the schema
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            _write(conn, _Generator(random.Random(seed), n, days, end, traced))
    finally:
        engine.dispose()


class _Generator:
    def __init__(self, rng: random.Random, n: int, days: float, end: float, traced: int) -> None:
        self.rng = rng
        self.n = n
        self.start = end - days * DAY
        self.span = days * DAY
        self.traced = min(traced, n)
        endings, weights = zip(*_ENDINGS, strict=True)
        self.endings = list(endings)
        self.weights = list(weights)

    def deployments(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        times = sorted(self.start + rng.random() * self.span for _ in range(self.n))
        for index, started_at in enumerate(times):
            outcome, reason, weight = rng.choices(self.endings, self.weights)[0]
            duration = rng.uniform(600, 2400)
            finished = outcome in ("promoted", "rolled_back", "aborted", "failed")
            has_commit = rng.random() >= 0.05
            yield {
                "id": f"syn{index:09d}",
                "service": rng.choice(SERVICES),
                "environment": ENVIRONMENTS[rng.random() < 0.4],
                "version": f"v1.{index}",
                "commit_sha": f"{rng.getrandbits(64):016x}" if has_commit else None,
                "commit_time": started_at - rng.lognormvariate(8.85, 1.0) if has_commit else None,
                "commit_time_missing": None if has_commit else "no_sha",
                "started_at": started_at,
                "finished_at": started_at + duration if finished else None,
                "outcome": outcome,
                "reason": reason,
                "max_weight": weight,
            }


def _write(conn: Connection, gen: _Generator) -> None:
    batch: list[dict[str, Any]] = []
    smokes: list[dict[str, Any]] = []
    for row in gen.deployments():
        batch.append(row)
        passed = row["reason"] != "smoke_test_failed"
        smokes.append(
            {
                "deployment_id": row["id"],
                "service": row["service"],
                "environment": row["environment"],
                "name": "healthz",
                "passed": passed,
                "duration": 0.05,
                "at": row["started_at"] + 1,
                "detail": "" if passed else "GET /healthz: 503",
            }
        )
        if len(batch) >= _BATCH:
            _flush(conn, batch, smokes)
    _flush(conn, batch, smokes)
    _write_traces(conn, gen)
    conn.execute(
        insert(counters),
        [
            {
                "service": service,
                "environment": "",
                "name": PROMETHEUS_QUERY_TOTAL,
                "labels": canonical_labels({"workflow": "analysis", "result": result}),
                "value": value,
            }
            for service in SERVICES
            for result, value in (("success", 9700.0), ("failed", 200.0), ("timeout", 100.0))
        ],
    )


def _flush(conn: Connection, batch: list[dict[str, Any]], smokes: list[dict[str, Any]]) -> None:
    if batch:
        conn.execute(insert(deployments), batch)
        conn.execute(insert(smoke_tests), smokes)
    batch.clear()
    smokes.clear()


def _write_traces(conn: Connection, gen: _Generator) -> None:
    """States and decisions of the newest promotions and rollbacks by analysis, shaped
    like a real rollout's."""
    newest = deployments.select().order_by(deployments.c.started_at.desc()).limit(gen.traced)
    rows = [
        *conn.execute(newest.where(deployments.c.outcome == "promoted")),
        *conn.execute(newest.where(deployments.c.reason.in_(ANALYSIS_REASONS))),
    ]
    states: list[dict[str, Any]] = []
    looks: list[dict[str, Any]] = []
    for row in rows:
        failing = row.reason in ANALYSIS_REASONS
        at = row.started_at
        seq = 0
        look_seq = 0
        for step, weight in enumerate(STEPS):
            if weight > max(row.max_weight, 10):
                break
            seq += 1
            states.append(_state(row, seq, at, weight))
            for look in range(5):
                at += 60
                look_seq += 1
                canary = 200.0 * (look + 1) * weight / 100
                baseline = 200.0 * (look + 1) * (100 - weight) / 100 or 1.0
                rate = 0.04 if failing and weight == row.max_weight else 0.002
                errors = round(canary * rate * gen.rng.uniform(0.5, 1.5))
                looks.append(
                    {
                        "deployment_id": row.id,
                        "seq": look_seq,
                        "at": at,
                        "action": "continue",
                        "step": step,
                        "weight": weight,
                        "result": "pass",
                        "reason": "synthetic",
                        "inputs": json.dumps(
                            {
                                "verdict": {
                                    "samples": {
                                        "canary_requests": canary,
                                        "canary_errors": float(errors),
                                        "baseline_requests": baseline,
                                        "baseline_errors": round(baseline * 0.002),
                                    }
                                }
                            }
                        ),
                    }
                )
        seq += 1
        states.append(_state(row, seq, at + 1, 100 if row.outcome == "promoted" else 0))
    if states:
        conn.execute(insert(rollout_states), states)
        conn.execute(insert(decisions), looks)


def _state(row: Any, seq: int, at: float, weight: int) -> dict[str, Any]:
    return {
        "deployment_id": row.id,
        "seq": seq,
        "at": at,
        "state": json.dumps({"deployment_id": row.id, "weight": weight}),
    }
