"""Figures that cannot be true are no evidence: refuse them before any statistic sees them.

A negative count, NaN, infinity, more errors than requests or more requests
than any service serves are what a wrong custom query, a broken exporter or a
counter glitch produce. Judged as they come, they pass a broken canary ("-5
errors") or crash the arithmetic; refused, they make the look inconclusive
with a reason that names the figure, its value and the query or URL it came
from, so a person can fix the source.

A refusal reaches only what it concerns: a broken latency histogram takes
the latency checks out of the look, never the error counts, so the
catastrophe guard and the error test keep judging a canary whose histogram
is unusable; broken counts leave only the crash-loop rule, when the resets
themselves are sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from safeship.providers.interface import Measurement, VersionSample

MAX_REQUESTS_PER_SECOND = 1e8
"""More requests per second than this, for one version, is no real traffic (the largest
services serve a few million)."""

ERROR_EXCESS = 1.05
"""Errors may exceed requests by this factor (plus one) before they are refused: Prometheus
extrapolates `increase()` per series, so a subset can come out a little larger."""


@dataclass(frozen=True)
class Refusals:
    """What of a measurement cannot be true, by what it takes out of the look."""

    counts: tuple[str, ...] = ()  # requests or errors: the look judges no counts
    latency: tuple[str, ...] = ()  # histograms: the look judges no latency
    resets: tuple[str, ...] = ()  # restarts: not even a crash loop can be told

    def all(self) -> tuple[str, ...]:
        return (*self.counts, *self.latency, *self.resets)


def refusals(measurement: Measurement) -> Refusals:
    """Every reason the measurement's figures cannot be true, with where they came from."""
    counts = list(measurement.problems)
    latency: list[str] = []
    resets: list[str] = []
    limit = MAX_REQUESTS_PER_SECOND * max(measurement.window.seconds, 1.0)
    for role, sample in (("canary", measurement.canary), ("baseline", measurement.baseline)):
        for figure, value in (("requests", sample.requests), ("errors", sample.errors)):
            problem = _count_problem(value, limit)
            if problem and math.isnan(value) and measurement.problems:
                continue  # the provider said why it does not know this figure
            if problem:
                counts.append(
                    f"{role} {figure} = {value!r} {problem}{_source(measurement, role, figure)}"
                )
        plain = _plain(sample.requests, limit) and _plain(sample.errors, limit)
        if plain and sample.errors > sample.requests * ERROR_EXCESS + 1:
            counts.append(
                f"{role} errors ({sample.errors:g}) exceed its requests ({sample.requests:g})"
                f"{_source(measurement, role, 'errors')}"
            )
        problem = _bucket_problem(sample, limit)
        if problem:
            latency.append(
                f"{role} latency buckets {problem}{_source(measurement, role, 'latency')}"
            )
        if sample.resets < 0:
            resets.append(f"{role} counter resets = {sample.resets} cannot be negative")
    return Refusals(tuple(counts), tuple(latency), tuple(resets))


def without_latency(measurement: Measurement) -> Measurement:
    """The measurement with both versions' latency figures left out (refused)."""

    def bare(sample: VersionSample) -> VersionSample:
        return replace(sample, latency_buckets=(), latency_samples=())

    return replace(
        measurement, canary=bare(measurement.canary), baseline=bare(measurement.baseline)
    )


def clamp_errors(sample: VersionSample) -> VersionSample:
    """Errors a little above requests (extrapolation) counted as every request failing."""
    if sample.errors <= sample.requests:
        return sample
    return replace(sample, errors=sample.requests)


def _plain(value: float, limit: float) -> bool:
    return _count_problem(value, limit) is None


def _count_problem(value: float, limit: float) -> str | None:
    if math.isnan(value):
        return "is not a number (NaN)"
    if math.isinf(value):
        return "is infinite"
    if value < 0:
        return "is negative: a count cannot be"
    if value > limit:
        return f"is beyond any real traffic (over {MAX_REQUESTS_PER_SECOND:g} per second)"
    return None


def _bucket_problem(sample: VersionSample, limit: float) -> str | None:
    previous = 0.0
    for le, count in sample.latency_buckets:
        if math.isnan(le) or le < 0:
            return f"have a bucket bound of {le!r} (a latency bound is a positive duration)"
        problem = _count_problem(count, limit)
        if problem:
            return f"le={le:g} count {count!r} {problem}"
        # Counts are cumulative; a dip beyond extrapolation noise means they do not add up.
        if count < previous - max(1.0, 0.01 * previous):
            return f"are not cumulative (le={le:g} has {count:g}, below {previous:g})"
        previous = max(previous, count)
    for value in sample.latency_samples:
        if not math.isfinite(value) or value < 0:
            return f"hold a duration of {value!r} s"
    return None


def _source(measurement: Measurement, role: str, figure: str) -> str:
    query = measurement.queries.get(f"{role}.{figure}") or measurement.queries.get(role)
    return f" (from {query})" if query else ""
