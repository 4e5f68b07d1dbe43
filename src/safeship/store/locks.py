"""One rollout per service and environment: a lock that dies with its holder.

The exclusion is one the operating system or the database releases by itself
when the holding process dies (kill -9, a lost runner): a `flock` on a file
beside a SQLite database, a session advisory lock on PostgreSQL, a plain
in-process lock for in-memory databases. So a lock left by a dead process is
not a lock at all: the next rollout simply gets it, and the holder row the
dead one left (see the `rollout_locks` table) tells it whom it took over from.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import zlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, ClassVar

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

# Any fixed number: the first key of every safeship rollout advisory lock on PostgreSQL.
_ADVISORY_CLASS = 0x5AFE_10C


def this_process() -> str:
    """Who holds a lock, in words a person can find: host and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class Mutex(ABC):
    """An exclusive lock taken without waiting."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """True if this process now holds it; False if another live process does."""

    @abstractmethod
    def release(self) -> None:
        """Give it up; safe to call once after a successful `try_acquire`."""


class FileMutex(Mutex):
    """`flock` on a file of its own: the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class AdvisoryMutex(Mutex):
    """A PostgreSQL session advisory lock on a connection kept for as long as it is held.

    The server releases it when that session ends, however the process ended.
    """

    def __init__(self, engine: Engine, key: str) -> None:
        self._engine = engine
        # Two 32-bit keys: safeship's class, and a stable hash of service/environment.
        self._key = zlib.crc32(key.encode()) - 2**31
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        conn = self._engine.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(_ADVISORY_CLASS, self._key)))
            acquired = bool(got.scalar_one())
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not acquired:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(select(func.pg_advisory_unlock(_ADVISORY_CLASS, self._key)))
                self._conn.commit()
            except DBAPIError:
                # The session is gone (the server stopped or dropped it), and with it the
                # lock: nothing is left to release, and the error that ended the rollout
                # is the one to report, not this one.
                pass
            finally:
                self._conn.close()
                self._conn = None


class ThreadMutex(Mutex):
    """For in-memory databases, which only one process can see anyway."""

    _held: ClassVar[set[str]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: str) -> None:
        self._key = key

    def try_acquire(self) -> bool:
        with self._guard:
            if self._key in self._held:
                return False
            self._held.add(self._key)
            return True

    def release(self) -> None:
        with self._guard:
            self._held.discard(self._key)


def lock_file(database: Path, key: str) -> Path:
    """The lock file of one service/environment beside a SQLite database file."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return database.with_name(f"{database.name}.rollout-{digest}.lock")
