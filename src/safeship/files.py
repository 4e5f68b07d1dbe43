"""Writing a file so that a reader (or a crash) sees the old content or the new, never half."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from safeship.errors import ConfigError


def write_atomically(path: Path, content: bytes, *, private: bool = False) -> None:
    """Temp file in the same folder, fsync, rename over `path`; raises OSError.

    The temp name starts with a dot so that a glob such as nginx's
    `include conf.d/*` never picks it up; an existing file keeps its mode and
    a new one gets 0644, like any configuration file, or 0600 when `private`
    (it holds credentials), which an existing file is also narrowed to.
    """
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    if private:
        mode &= 0o600
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class UnreadableFile(ValueError):
    """A file that cannot be a config, secret or rule file: not a regular file, or too large."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; raises OSError, or
    UnreadableFile for what is no such file.

    A FIFO, device or directory is refused before it is opened: reading /dev/zero never
    ends, and opening a FIFO blocks until someone writes to it. Only `limit + 1` bytes are
    ever read, so a file that grows while it is read cannot exhaust memory either.
    """
    if not stat.S_ISREG(path.stat().st_mode):
        raise UnreadableFile("is not a regular file (a device, FIFO or directory)")
    with path.open("rb") as handle:
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise UnreadableFile(f"is larger than {limit} bytes")
    return content


def exists(path: Path) -> bool:
    """Whether something is at `path` (a dangling symlink included); a path the system
    cannot even look up (a name too long) is a ConfigError naming it, not an OSError."""
    try:
        return path.exists() or path.is_symlink()  # a dangling link is there too
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be looked up: {exc.strerror or exc}") from None
