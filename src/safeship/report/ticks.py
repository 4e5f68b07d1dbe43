"""Axis ticks a person would pick: round steps, whole units, labels exact and distinct.

Numbers step by 1, 2 or 5 times a power of ten (Heckbert, "Nice numbers for graph
labels", Graphics Gems, 1990); a step is kept as its digit and power of ten, so every
label is written exactly, with as many decimals as the step needs and no fewer (a
quarter percent is 0.25%, never 0.2%). Counts step by whole numbers. Durations step by
whole seconds, minutes, hours or days and read as a person says them (1 min 30 s).
Every axis of the report starts at zero (counts, rates, time since a rollout began);
a count or rate axis ends at the first tick at or above the largest value, so the
data always fit under a labelled top line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Ticks a count axis aims at (Heckbert's "ntick"); it gets 2 (0 and 1) to 6.
TARGET_TICKS = 5
#: At most this many steps on a time axis: labels such as "1 min 30 s" are wide.
MAX_TIME_STEPS = 5

_MINUTE, _HOUR, _DAY = 60, 3600, 86400
# Steps a person counts time in; past a week, 1, 2 or 5 times a power of ten days.
_TIME_STEPS = (
    *(1, 2, 5, 10, 15, 30),
    *(m * _MINUTE for m in (1, 2, 5, 10, 15, 30)),
    *(h * _HOUR for h in (1, 2, 3, 6, 12)),
    *(d * _DAY for d in (1, 2, 7)),
)
_UNITS = ((_DAY, "d"), (_HOUR, "h"), (_MINUTE, "min"), (1, "s"))
# Large counts are written in thousands, millions, billions: "20k", "1.5M".
_COUNT_UNITS = ((9, "G"), (6, "M"), (3, "k"))
_PLAIN_BELOW = 10_000
# Smaller rates are not measured (10^9 requests), and would underflow the arithmetic.
_SMALLEST_PERCENT = 1e-7
# Tolerance for a quotient meant to be a round digit (0.05 / 0.01 is 5.000000000000001).
_EPSILON = 1e-9


@dataclass(frozen=True)
class Tick:
    value: float
    label: str


@dataclass(frozen=True)
class _Step:
    """digit x 10^power, digit 1, 2 or 5."""

    digit: int
    power: int

    @property
    def size(self) -> float:
        return self.digit * 10.0**self.power


def _nice(x: float, *, rounded: bool) -> _Step:
    """Heckbert's nicenum: the 1-2-5 number nearest `x` (rounded), else the smallest at
    or above it (to within float error)."""
    power = math.floor(math.log10(x))
    fraction = x / 10.0**power
    limits = ((1.5, 1), (3.0, 2), (7.0, 5)) if rounded else ((1.0, 1), (2.0, 2), (5.0, 5))
    for limit, digit in limits:
        if fraction < limit or (not rounded and fraction <= limit + _EPSILON):
            return _Step(digit, power)
    return _Step(1, power + 1)


def _decimal(units: int, power: int) -> str:
    """units x 10^power written exactly: (15, -2) is "0.15", (3, 2) is "300"."""
    if power >= 0:
        return str(units * 10**power)
    digits = str(units).rjust(1 - power, "0")
    return f"{digits[:power]}.{digits[power:]}"


def count_ticks(high: float) -> list[Tick]:
    """Whole-number ticks from 0 to at least `high` (deployments, promotions).

    Nothing counted (0) still gets an axis, 0 to 1. From 10,000 up the labels are in
    thousands, millions or billions, sharing one unit and one number of decimals.
    """
    high = max(high, 1.0)
    step = _nice(_nice(high, rounded=False).size / (TARGET_TICKS - 1), rounded=True)
    if step.power < 0:
        step = _Step(1, 0)
    count = math.ceil(high / step.size)  # no tolerance: the step is a whole number
    top = count * step.size
    unit = None if top < _PLAIN_BELOW else next(u for u in _COUNT_UNITS if top >= 10 ** u[0])

    def label(k: int) -> str:
        if k == 0:
            return "0"
        if unit is None:
            return _decimal(k * step.digit, step.power)
        power, suffix = unit
        return _decimal(k * step.digit, step.power - power) + suffix

    return [Tick(k * step.size, label(k)) for k in range(count + 1)]


def percent_ticks(high: float, steps: int) -> list[Tick]:
    """`steps` equal steps from 0% up to at least `high` (a ratio: 0.0025 is 0.25%).

    A fixed number of steps, so that a second axis shares the first one's grid lines;
    the step is the smallest 1-2-5 number of percent that reaches `high`. No rate at
    all (0) gets an axis to 1%; one below one in 10^9 an axis as for one in 10^9.
    """
    top = max(high * 100, _SMALLEST_PERCENT) if high > 0 else 1.0
    step = _nice(top / steps, rounded=False)
    return [
        Tick(k * step.size / 100, "0%" if k == 0 else f"{_decimal(k * step.digit, step.power)}%")
        for k in range(steps + 1)
    ]


def time_ticks(high: float) -> list[Tick]:
    """Ticks in whole seconds from 0 up to `high` seconds, at most MAX_TIME_STEPS steps.

    Unlike the other axes a time axis ends where the data end (a rollout stops when it
    stops, not at a round time), so the last tick is at or below `high`. The step is
    the smallest of 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h,
    1, 2, 7 d (then 10, 20, 50 d ...) that needs no more; less than a second of data
    gets an axis to 1 s.
    """
    high = max(high, 1.0)
    size = next((s for s in _TIME_STEPS if _whole_steps(high, s) <= MAX_TIME_STEPS), None)
    if size is None:
        days = _nice(high / _DAY / MAX_TIME_STEPS, rounded=False)  # 10 days or more
        size = days.digit * 10**days.power * _DAY
    return [
        Tick(float(k * size), duration_label(k * size)) for k in range(_whole_steps(high, size) + 1)
    ]


def _whole_steps(high: float, size: int) -> int:
    """How many whole steps of `size` fit from 0 to `high` (exact: sizes are whole)."""
    return math.floor(high / size)


def duration_label(seconds: int) -> str:
    """Whole seconds as a person says them: 0, 45 s, 1 min 30 s, 1 h 15 min, 2 d 12 h."""
    if seconds == 0:
        return "0"
    parts = []
    for size, unit in _UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts)
