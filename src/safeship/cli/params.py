"""Option types that refuse what cannot work (inf, nan, out of range) with a usage error.

click's `FloatRange` compares with `<` and `>`, which NaN always passes, and accepts
infinities when a side is open: a `--rps nan` would reach numpy and crash there.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from safeship.rollout.commit_time import parse_commit_time

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def fail(message: str, param: click.Parameter | None, ctx: click.Context | None) -> NoReturn:
    """A usage error naming where the value came from: its environment variable when it
    came from the environment (the user may never have typed the option), else the option."""
    if ctx is not None and param is not None and param.name is not None:
        source = ctx.get_parameter_source(param.name)
        envvar = getattr(param, "envvar", None)
        if source is ParameterSource.ENVIRONMENT and isinstance(envvar, str):
            hint = f"environment variable {envvar} (for {param.get_error_hint(ctx)})"
            raise click.BadParameter(message, ctx=ctx, param=param, param_hint=hint)
    raise click.BadParameter(message, ctx=ctx, param=param)


class FiniteFloat(click.FloatRange):
    """A float within the range that is also finite (never inf or nan)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = super().convert(value, param, ctx)
        except click.BadParameter as exc:
            fail(exc.message, param, ctx)
        if not math.isfinite(number):
            fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class CommitTime(click.types.FloatParamType):
    """A commit time in ISO 8601 with an offset or epoch seconds, as epoch seconds.

    A bad value from the environment is named by its variable (see `fail`): the user set
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
            fail(f"{value!r} {exc}", param, ctx)


class Seconds(FiniteFloat):
    """Seconds, written as a number (`300`) or a duration (`5m`, `1h30m`, `90s`)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip() and not _is_number(value):
            text = value.strip()
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                fail(f"{value!r} is neither seconds (300) nor a duration (5m, 1h30m).",
                     param, ctx)  # fmt: skip
            value = sum(float(n) * _UNITS[u] for n, u in parts)
        return super().convert(value, param, ctx)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


POSITIVE = FiniteFloat(min=0, min_open=True)
SECONDS = Seconds(min=0, min_open=True)
RATE = FiniteFloat(min=0, max=1)
COMMIT_TIME = CommitTime()
PORT = click.IntRange(0, 65535)
