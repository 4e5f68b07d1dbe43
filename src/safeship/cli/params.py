"""Option types that refuse what cannot work (inf, nan, out of range) with a usage error.

click's `FloatRange` compares with `<` and `>`, which NaN always passes, and accepts
infinities when a side is open: a `--rps nan` would reach numpy and crash there.
"""

from __future__ import annotations

import math
from typing import Any

import click
from click.core import ParameterSource

from safeship.rollout.commit_time import parse_commit_time


class FiniteFloat(click.FloatRange):
    """A float within the range that is also finite (never inf or nan)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class CommitTime(click.types.FloatParamType):
    """A commit time in ISO 8601 with an offset or epoch seconds, as epoch seconds.

    A bad value from the environment is named by its variable: the user set
    SAFESHIP_COMMIT_TIME (or a workflow did), not the option click would name.
    (A float type underneath only so that it is typed on every click 8 release.)
    """

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_commit_time(str(value))
        except ValueError as exc:
            self.fail(f"{_shown(value, param, ctx)} {exc}", param, ctx)


def _shown(value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
    """`value` as the user wrote it: `VAR='value'` when it came from an environment variable."""
    if (
        ctx is not None
        and param is not None
        and param.name is not None
        and isinstance(param.envvar, str)
        and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT
    ):
        return f"{param.envvar}={value!r}"
    return repr(value)


POSITIVE = FiniteFloat(min=0, min_open=True)
RATE = FiniteFloat(min=0, max=1)
COMMIT_TIME = CommitTime()
PORT = click.IntRange(0, 65535)
