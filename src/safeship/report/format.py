"""How figures read in the text, markdown and HTML reports (JSON keeps raw numbers)."""

from __future__ import annotations

from datetime import UTC, datetime

from safeship.report.dora import Tier


def percent(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1%}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def rate(per_day: float | None) -> str:
    if per_day is None:
        return "no data"
    return f"{per_day:.2f}/day ({per_day * 7:.1f}/week)"


def tier(value: Tier | None) -> str:
    return "-" if value is None else value.value


def short_duration(seconds: float) -> str:
    """A round duration in its largest whole unit: 15m, 1h, 2d (axis labels)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def month_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d")


def timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
