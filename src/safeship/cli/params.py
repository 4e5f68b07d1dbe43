"""Option types that refuse what cannot work (inf, nan, out of range) with a usage error.

click's `FloatRange` compares with `<` and `>`, which NaN always passes, and accepts
infinities when a side is open: a `--rps nan` would reach numpy and crash there.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A float within the range that is also finite (never inf or nan)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


POSITIVE = FiniteFloat(min=0, min_open=True)
RATE = FiniteFloat(min=0, max=1)
EPOCH_SECONDS = FiniteFloat(min=0, max=253402300799)  # up to the end of 9999
PORT = click.IntRange(0, 65535)
