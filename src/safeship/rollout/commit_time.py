"""The commit time a rollout records: DORA lead time is measured from it.

It is given as `--commit-time` / `SAFESHIP_COMMIT_TIME`, in ISO 8601 with a UTC
offset (as `git show -s --format=%cI` and GitHub's `github.event.head_commit.timestamp`
write it) or in epoch seconds.
"""

from __future__ import annotations

from datetime import datetime

#: 9999-12-31T23:59:59Z: later is a typo, not a commit.
LATEST = 253402300799.0

_FORMS = "ISO 8601 with a UTC offset (2026-01-02T03:04:05+01:00, 2026-01-02T02:04:05Z)"


def parse_commit_time(text: str) -> float:
    """Epoch seconds of `text`; a ValueError says what was wrong and what is accepted.

    The message reads after the value ("'x' is ..."), so that a caller can say where
    the value came from. A time without an offset is refused rather than guessed: a
    runner's local zone is not the committer's.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is neither {_FORMS} nor epoch seconds") from None
        if when.tzinfo is None:
            raise ValueError(f"has no UTC offset: give {_FORMS}, or epoch seconds") from None
        seconds = when.timestamp()
    if not 0 <= seconds <= LATEST:  # also refuses nan
        raise ValueError(f"is not a time from 1970 to 9999 ({_FORMS}, or epoch seconds)")
    return seconds
