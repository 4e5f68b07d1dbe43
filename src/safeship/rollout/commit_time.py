"""The commit time a rollout records: DORA lead time is measured from it.

It is given as `--commit-time` / `SAFESHIP_COMMIT_TIME`, in ISO 8601 with a UTC
offset (as `git show -s --format=%cI` and GitHub's `github.event.head_commit.timestamp`
write it) or in epoch seconds. Without one, a known commit sha is looked up with
`git show -s --format=%cI` in the current directory: a CI job that checked out the
commit it deploys (actions/checkout, even at fetch-depth 1) has it. Nothing here
fails a rollout: without a time, lead time does not count it, and the rollout
records why (`CommitTimeMissing`) for `safeship report` to say.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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


#: Seconds git gets to answer: it reads one local object, so a hang is a broken setup.
GIT_TIMEOUT = 10.0

# A full or abbreviated object id: nothing else reaches git's command line, so a
# sha can never be read as an option or a revision expression.
_SHA = re.compile(r"[0-9a-fA-F]{4,64}")

_GIVE = "give --commit-time or SAFESHIP_COMMIT_TIME"


class CommitTimeMissing(StrEnum):
    """Why a rollout has no commit time, as `deployments.commit_time_missing` keeps it."""

    NO_SHA = "no_sha"
    NOT_A_SHA = "not_a_sha"
    NO_GIT = "no_git"
    NOT_A_CHECKOUT = "not_a_checkout"
    SHA_NOT_IN_CHECKOUT = "sha_not_in_checkout"
    GIT_FAILED = "git_failed"

    @property
    def explanation(self) -> str:
        """Why, in the report's words: what was not given, and what git could not do."""
        return "no --commit-time / SAFESHIP_COMMIT_TIME and " + _EXPLANATIONS[self]


_EXPLANATIONS = {
    CommitTimeMissing.NO_SHA: "no --commit-sha / SAFESHIP_COMMIT_SHA to read it from git",
    CommitTimeMissing.NOT_A_SHA: "a commit sha that is not a hexadecimal commit id",
    CommitTimeMissing.NO_GIT: "no git on PATH to read the sha's time",
    CommitTimeMissing.NOT_A_CHECKOUT: "not run in a git checkout",
    CommitTimeMissing.SHA_NOT_IN_CHECKOUT: "sha not in the checkout",
    CommitTimeMissing.GIT_FAILED: "git failed to read the sha's time (the rollout warned why)",
}


@dataclass(frozen=True)
class CommitTime:
    """A rollout's commit time (epoch seconds), or why it has none and what to tell the user.

    `warning` is set when a sha was given but its time could not be read: the
    user meant lead time to count this rollout. Without any sha there is
    nothing to warn about.
    """

    seconds: float | None
    missing: CommitTimeMissing | None = None
    warning: str | None = None


def commit_time(sha: str | None, given: float | None) -> CommitTime:
    """The given time; else the committer time of `sha` from git in the current directory."""
    if given is not None:
        return CommitTime(given)
    if not sha:
        return CommitTime(None, CommitTimeMissing.NO_SHA)
    if not _SHA.fullmatch(sha):
        return _missing(
            CommitTimeMissing.NOT_A_SHA,
            f"commit sha {sha!r} is not a hexadecimal commit id, so git was not asked",
        )
    return _from_git(sha, os.getcwd())


def _from_git(sha: str, cwd: str) -> CommitTime:
    # ^{commit}: a tree or blob id is no commit; `--`: the argument is a revision, never
    # a path; C locale: the messages below are git's English ones.
    command = ["git", "show", "-s", "--format=%cI", f"{sha}^{{commit}}", "--"]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return _missing(CommitTimeMissing.NO_GIT, f"git is not on PATH to read commit {sha}")
    except subprocess.TimeoutExpired:
        return _missing(
            CommitTimeMissing.GIT_FAILED, f"git show {sha} did not answer in {GIT_TIMEOUT:g}s"
        )
    except OSError as exc:
        return _missing(CommitTimeMissing.GIT_FAILED, f"git could not be run: {exc}")
    if done.returncode == 0:
        try:
            return CommitTime(parse_commit_time(done.stdout))
        except ValueError:
            return _missing(
                CommitTimeMissing.GIT_FAILED,
                f"git show {sha} printed {done.stdout.strip()!r}, not a commit time",
            )
    said = done.stderr.strip().splitlines()
    if any("not a git repository" in line for line in said):
        return _missing(
            CommitTimeMissing.NOT_A_CHECKOUT,
            f"{cwd} is not in a git checkout to read commit {sha} from",
        )
    if any(line.startswith("fatal: bad revision") for line in said) and not any(
        "ambiguous" in line for line in said
    ):
        return _missing(
            CommitTimeMissing.SHA_NOT_IN_CHECKOUT,
            f"commit {sha} is not in the checkout at {cwd} (a shallow clone has only the "
            "commits it fetched)",
        )
    return _missing(
        CommitTimeMissing.GIT_FAILED,
        f"git show {sha} failed (exit {done.returncode}): {' '.join(said) or 'no message'}",
    )


def _missing(why: CommitTimeMissing, detail: str) -> CommitTime:
    return CommitTime(None, why, f"no commit time for lead time: {detail}; {_GIVE}")
