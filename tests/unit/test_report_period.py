"""The report period: `--since`, `--from`/`--to` in UTC, and what is refused."""

from __future__ import annotations

import pytest

from safeship.errors import ConfigError
from safeship.report.period import DAY, Period, resolve_period

NOW = 1767225600.0 + 0.5 * DAY  # 2026-01-01T12:00:00Z


def test_since_ends_now_and_defaults_to_30_days() -> None:
    assert resolve_period(NOW, None, None, None) == Period(NOW - 30 * DAY, NOW)
    assert resolve_period(NOW, "12h", None, None) == Period(NOW - DAY / 2, NOW)
    assert resolve_period(NOW, "2w", None, None) == Period(NOW - 14 * DAY, NOW)


def test_a_date_to_covers_that_whole_day_in_utc() -> None:
    period = resolve_period(NOW, None, "2025-12-01", "2025-12-31")
    assert period == Period(1764547200.0, 1767225600.0)
    assert period.days == 31


def test_from_alone_runs_until_now() -> None:
    assert resolve_period(NOW, None, "2026-01-01", None) == Period(NOW - DAY / 2, NOW)


def test_date_times_keep_their_offset() -> None:
    period = resolve_period(NOW, None, "2026-01-01T01:00:00+01:00", "2026-01-01T06:00:00")
    assert period == Period(NOW - DAY / 2, NOW - DAY / 4)


@pytest.mark.parametrize(
    ("since", "date_from", "date_to", "message"),
    [
        ("30x", None, None, "--since '30x'"),
        ("0d", None, None, "positive"),
        ("30d", "2026-01-01", None, "either --since or --from"),
        (None, None, "2026-01-01", "--to needs --from"),
        (None, "2026-01-02", "2026-01-01", "must be after"),
        (None, "yesterday", None, "--from 'yesterday'"),
    ],
)
def test_bad_periods_are_refused(
    since: str | None, date_from: str | None, date_to: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_period(NOW, since, date_from, date_to)


def test_the_ends_of_the_calendar_are_periods_or_clear_errors() -> None:
    # Before: ValueError (year out of range) and OverflowError tracebacks.
    last = resolve_period(NOW, None, "9999-12-31", "9999-12-31")
    assert last.describe().startswith("9999-12-31 00:00 UTC to 9999-12-31 23:59 UTC")
    first = resolve_period(NOW, None, "0001-01-01", "0001-01-01")
    assert first.describe().startswith("0001-01-01 00:00 UTC")
    for start in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):
        with pytest.raises(ConfigError, match="outside the calendar"):
            resolve_period(NOW, None, start, None)


def test_since_is_at_most_a_century() -> None:
    assert resolve_period(NOW, "36525d", None, None).days == 36525
    with pytest.raises(ConfigError, match=r"at most 36525d"):
        resolve_period(NOW, "99999999999d", None, None)
