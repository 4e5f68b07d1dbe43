"""Start, await and stop the child processes safeship runs from its own modules.

The demo's services and the local router's proxy run as processes of their
own, so that a controller that dies leaves traffic where it was. This module
is the one place that knows how to run such a child: as `python -m MODULE`
importing this very safeship, waiting for the `ready key=value ...` line it
prints once it serves, and always reaping it when it stops.
"""

from __future__ import annotations

import os
import selectors
import site
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from safeship.redact import SHOWN_MARGIN, shown

# How long a child that failed to start gets to exit on SIGTERM: it serves
# nothing yet, so there is nothing to drain.
_FAILED_START_GRACE = 2.0
# Enough of stderr to hold a traceback's end or a one-line complaint.
_TAIL_BYTES = 2000


class ChildStartError(Exception):
    """A child exited, stalled or misspoke before it was ready; it has been reaped.

    The message says only what went wrong (`exited with code 1`, ...), so that
    callers can name the child in their own words; `stderr_tail` says why, if
    the child said anything.
    """

    stderr_tail = ""


class ChildProcess:
    """A running child that has reported ready; `stop()` always reaps it.

    `ready` holds the `key=value` fields of its ready line, such as the
    addresses it bound when asked for port 0.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], stderr: IO[bytes], ready: Mapping[str, str]
    ) -> None:
        self._process = process
        self._stderr = stderr
        self.ready = ready

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def stop(self, timeout: float) -> int:
        """SIGTERM so in-flight work drains, then SIGKILL if it overstays; returns the exit code.

        Safe to repeat: a reaped child keeps its exit code.
        """
        code = _reap(self._process, timeout)
        self._stderr.close()
        return code

    def stderr_tail(self, limit: int = _TAIL_BYTES) -> str:
        """The end of what the child wrote to stderr (redacted), for error messages; empty
        once stopped."""
        return "" if self._stderr.closed else _tail(self._stderr, limit)


class ChildHandle(ABC):
    """What a caller holds for a child it started: leaving a `with` block stops the child.

    Shared so that no handle can forget it, whatever the block raises.
    """

    @abstractmethod
    def stop(self) -> object:
        """Stop and reap the child; safe to repeat."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_child(
    module: str, args: Sequence[str], ready_fields: Collection[str], timeout: float
) -> ChildProcess:
    """Run `python -m module *args` and wait until its ready line carries `ready_fields`.

    Raises `ChildStartError` if the child exits, prints something else first,
    or is not ready within `timeout` seconds, and `OSError` if it cannot be
    started at all; either way nothing is left running.
    """
    # A file, not a pipe: nobody drains stderr while the child runs.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(),
        )
    except BaseException:
        stderr.close()
        raise
    try:
        ready = _wait_ready(process, ready_fields, timeout)
    except BaseException as exc:
        _reap(process, _FAILED_START_GRACE)
        if isinstance(exc, ChildStartError):
            # Read after reaping, so the tail includes the child's last words.
            exc.stderr_tail = _tail(stderr, _TAIL_BYTES)
        stderr.close()
        raise
    return ChildProcess(process, stderr, ready)


def _child_env() -> dict[str, str]:
    """Make the child import this very safeship, also when it runs from an uninstalled tree.

    An installed copy needs nothing, and putting site-packages on PYTHONPATH
    would move it ahead of the standard library, so only other roots are added.
    """
    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    if root not in {Path(path).resolve() for path in site_dirs}:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _wait_ready(
    process: subprocess.Popen[bytes], fields: Collection[str], timeout: float
) -> dict[str, str]:
    """The fields of the child's first stdout line, which must be its ready line.

    Reading whatever the pipe holds rather than whole lines means a child
    caught halfway through writing the line is waited for, not misread, and
    the deadline holds even while it writes nothing.
    """
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildStartError(f"was not ready within {timeout}s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise ChildStartError(f"exited with code {process.wait()}")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode(errors="replace")
    ready = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
    if not line.startswith("ready ") or not set(fields) <= ready.keys():
        raise ChildStartError(f"printed {line!r} instead of its ready line")
    return ready


def _reap(process: subprocess.Popen[bytes], timeout: float) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return code


def _tail(file: IO[bytes], limit: int) -> str:
    """The last `limit` characters of a file the child may still be writing to, redacted.

    Read with `shown`'s margin before the cut, so that a credential (a URL's password in a
    traceback) the cut goes through is whole when it is redacted. `pread` leaves the file
    offset, which the child shares, alone, so the child's next write still lands at the end.
    """
    size = os.fstat(file.fileno()).st_size
    start = max(0, size - limit - SHOWN_MARGIN)
    text = os.pread(file.fileno(), size - start, start).decode(errors="replace").strip()
    return shown(text, limit=limit, tail=True)
