"""`safeship report` on a million-deployment history: SQLite and PostgreSQL side by side.

Usage:
    python benchmarks/report.py [--deployments 1000000] [--days 365] [--window 90]
                                [--repeats 5] [--backends sqlite,postgresql]

For each backend a fresh store (a SQLite file in a temporary folder; a database of a
throwaway PostgreSQL started here, `safeship.demo.postgres_server`) is filled with
`safeship.report.synthetic.generate_history`: `--deployments` deployments spread over
`--days` days ending now, each with a smoke test. PostgreSQL then gets `VACUUM ANALYZE`,
as autovacuum would have done to a store of that size; SQLite is left as safeship
leaves it. The report over the last `--window` days (everything `safeship report`
computes: one grouped pass, lead-time percentiles, restore episodes, smoke tests,
counters, canary traces) is then built `--repeats` times on a fresh engine each time,
as the command does. Target: the median under one second on both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from safeship.report.build import report_from_url
from safeship.report.period import DAY, Period
from safeship.report.queries import Scope
from safeship.report.synthetic import generate_history

TARGET_S = 1.0


@dataclass
class Result:
    backend: str
    load_s: float
    in_window: int
    times: list[float]


@contextmanager
def _store(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="safeship-report-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'history.db'}"
        return
    from safeship.demo.postgres_server import PostgresServer

    with PostgresServer() as pg:
        yield pg.url


def _run(backend: str, args: argparse.Namespace) -> Result:
    with _store(backend) as url:
        end = time.time()
        started = time.perf_counter()
        generate_history(url, args.deployments, args.days, seed=1, end=end)
        if backend == "postgresql":
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("VACUUM ANALYZE"))
            engine.dispose()
        load_s = time.perf_counter() - started
        scope = Scope(Period(end - args.window * DAY, end))
        times = []
        report = None
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = report_from_url(url, scope, end)
            times.append(time.perf_counter() - started)
        assert report is not None
        return Result(backend, load_s, report.counts.deployments, times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--window", type=float, default=90)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)

    results = []
    for backend in args.backends.split(","):
        print(f"{backend}: loading {args.deployments} deployments...", file=sys.stderr)
        results.append(_run(backend, args))

    print(
        f"safeship report over {args.window:g} days of a {args.deployments}-deployment "
        f"history spanning {args.days:g} days, {args.repeats} runs each (seconds)\n"
    )
    print(f"{'backend':<12}{'in window':>11}{'load':>9}{'median':>9}{'min':>8}{'max':>8}  target")
    ok = True
    for r in results:
        median = statistics.median(r.times)
        passed = median < TARGET_S
        ok = ok and passed
        print(
            f"{r.backend:<12}{r.in_window:>11}{r.load_s:>9.1f}{median:>9.3f}"
            f"{min(r.times):>8.3f}{max(r.times):>8.3f}  "
            f"{'PASS' if passed else 'FAIL'} (< {TARGET_S:g} s)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
