"""The report's time range: `--since 30d`, or `--from DATE --to DATE` (UTC).

A deployment belongs to the period when it *started* inside it (`start <= started_at <
end`): `started_at` is indexed and never changes, so a report over a closed period gives
the same figures tomorrow, whatever finished late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from safeship.errors import ConfigError

DAY = 86400.0
WEEK = 7 * DAY
_UNITS = {"m": 60.0, "h": 3600.0, "d": DAY, "w": WEEK}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
DEFAULT_SINCE = "30d"
MAX_SINCE_DAYS = 36525  # a century: further back than any deployment history
_FIRST_MOMENT = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST_MOMENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Period:
    """`[start, end)` in unix seconds."""

    start: float
    end: float

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY

    def describe(self) -> str:
        return f"{_iso(self.start)} to {_iso(self.end)} ({self.days:g} days)"


def parse_since(text: str) -> float:
    """A duration like `30d`, `12h`, `2w` or `90m`, in seconds."""
    match = _SINCE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"--since {text!r}: expected a positive number and a unit m, h, d or w (e.g. 30d)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_SINCE_DAYS * DAY:
        raise ConfigError(f"--since {text!r}: at most {MAX_SINCE_DAYS}d (a century) back")
    return seconds


def parse_date(text: str, option: str, *, end_of_day: bool = False) -> float:
    """A date (`2026-01-31`) or ISO date-time; UTC unless it carries an offset.

    A bare date given as the end of the period means the end of that day, so
    `--from 2026-01-01 --to 2026-01-31` covers all of January.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected a date like 2026-01-31 or 2026-01-31T12:00:00+00:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        if end_of_day and len(text.strip()) == len("2026-01-31"):
            if parsed.date() == datetime.max.date():
                return _LAST_MOMENT  # the end of 9999-12-31: the end of the calendar
            parsed += timedelta(days=1)
        moment = parsed.timestamp()
        if not _FIRST_MOMENT <= moment <= _LAST_MOMENT:
            raise ValueError(text)
        return moment
    except (OverflowError, ValueError):
        raise ConfigError(
            f"{option} {text!r}: outside the calendar (years 1 to 9999, in UTC)"
        ) from None


def resolve_period(
    now: float, since: str | None, date_from: str | None, date_to: str | None
) -> Period:
    """The period the options name; `--since` (default 30d) ends now."""
    if since is not None and (date_from is not None or date_to is not None):
        raise ConfigError("give either --since or --from/--to, not both")
    if date_from is None and date_to is not None:
        raise ConfigError("--to needs --from")
    if date_from is not None:
        start = parse_date(date_from, "--from")
        end = now if date_to is None else parse_date(date_to, "--to", end_of_day=True)
        if end <= start:
            raise ConfigError(f"--to ({_iso(end)}) must be after --from ({_iso(start)})")
        return Period(start, end)
    return Period(now - parse_since(since or DEFAULT_SINCE), now)


def _iso(ts: float) -> str:
    # isoformat, not strftime("%Y"): glibc writes the year 1 as "1", not "0001"
    return datetime.fromtimestamp(ts, UTC).isoformat(sep=" ", timespec="minutes")[:16] + " UTC"
