"""A throwaway PostgreSQL on loopback, for the history-store tests and demos.

`initdb` makes a fresh cluster in a temporary folder (trust authentication, reachable
only on 127.0.0.1 and a unix socket in that folder, fsync off: the data is thrown away),
`postgres` runs in the foreground as a child, and a `safeship` database is created once
it accepts connections. PostgreSQL refuses to run as root, so under root both run as the
`postgres` system user, which owns the folder. The binaries come from the Debian package
`postgresql-15`, which keeps them in /usr/lib/postgresql/<major>/bin, off the PATH.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from safeship.child import ChildHandle, ChildProcess
from safeship.demo.monitoring import ServerStartError, free_port
from safeship.redact import shown

POSTGRES_PACKAGE = "postgresql-15"
DATABASE = "safeship"
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
# A fast shutdown (SIGINT) ends in well under a second; past this it is killed.
_STOP_GRACE = 5.0


def find_postgres_bin() -> Path | None:
    """The folder holding `initdb` and `postgres`: Debian's newest major, else the PATH's."""

    def major(path: Path) -> tuple[int, str]:
        name = path.parent.name
        return (int(name), name) if name.isdigit() else (-1, name)

    debian = [
        path
        for path in _DEBIAN_ROOT.glob("*/bin")
        if (path / "initdb").is_file() and (path / "postgres").is_file()
    ]
    if debian:
        return max(debian, key=major)
    initdb = shutil.which("initdb")
    if initdb is not None and (Path(initdb).parent / "postgres").is_file():
        return Path(initdb).parent
    return None


class PostgresServer(ChildHandle):
    """PostgreSQL on a free loopback port with an empty `safeship` database.

    `url` is that database's SQLAlchemy URL (psycopg 3, no password: trust on loopback);
    `create_database(name)` adds another and returns its URL. `stop()` (also leaving a
    `with` block) shuts the server down and deletes its files.
    """

    def __init__(self, *, timeout: float = 20.0) -> None:
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise ServerStartError(
                f"PostgreSQL is not installed (Debian package `{POSTGRES_PACKAGE}`: "
                f"apt-get install {POSTGRES_PACKAGE})"
            )
        # Under root, run as `postgres`: initdb and postgres refuse to run as root.
        account = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.user = account.pw_name
        self._as_user: dict[str, Any] = (
            {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            if os.geteuid() == 0
            else {}
        )
        # The unix socket lives here, and socket paths are limited to ~108 bytes: short name.
        self._dir = tempfile.TemporaryDirectory(prefix="ssh-pg-")
        self._root = Path(self._dir.name)
        self.port = free_port()
        self.url = self._url(DATABASE)
        self._child: ChildProcess | None = None
        try:
            if os.geteuid() == 0:
                os.chown(self._root, account.pw_uid, account.pw_gid)
            self._initdb(bin_dir)
            self._child = self._start(bin_dir)
            self._wait_ready(timeout)
            self.create_database(DATABASE)
        except BaseException:
            self.stop()
            raise

    def _url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _initdb(self, bin_dir: Path) -> None:
        command = [
            str(bin_dir / "initdb"),
            f"--pgdata={self._root / 'data'}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",  # no dependency on the machine's locales, and the fastest sorting
            "--no-sync",
            "--no-instructions",
        ]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self._root,
            check=False,
            **self._as_user,
        )
        if done.returncode != 0:
            raise ServerStartError(
                f"initdb exited with code {done.returncode}: "
                f"{shown(done.stderr.strip(), limit=800, tail=True)}"
            )

    def _start(self, bin_dir: Path) -> ChildProcess:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            # Throwaway data: durability only costs time here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Tests open a database per test, each store with its own pool.
            "max_connections": "200",
        }
        command = [str(bin_dir / "postgres"), "-D", str(self._root / "data")]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self._root,
                **self._as_user,
            )
        except BaseException:
            stderr.close()
            raise
        return ChildProcess(process, stderr, {})

    def _wait_ready(self, timeout: float) -> None:
        assert self._child is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._child.returncode is not None:
                raise ServerStartError(
                    f"postgres exited with code {self._child.returncode}: "
                    f"{self._child.stderr_tail(800)}"
                )
            try:
                self._admin(sql.SQL("SELECT 1"))
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"postgres not accepting connections within {timeout:g}s ({exc}): "
                        f"{self._child.stderr_tail(800)}"
                    ) from exc
            time.sleep(0.05)

    def _admin(self, statement: sql.SQL | sql.Composed) -> None:
        """Run one statement outside a transaction (CREATE DATABASE needs that)."""
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """Create an empty database `name` and return its URL."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self._url(name)

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return None if self._child is None else self._child.returncode

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open sessions are ended, not waited for); safe to repeat."""
        if self._child is not None:
            if self._child.returncode is None:
                os.kill(self._child.pid, signal.SIGINT)
                deadline = time.monotonic() + _STOP_GRACE
                while self._child.returncode is None and time.monotonic() < deadline:
                    time.sleep(0.02)
            self._child.stop(_STOP_GRACE)  # reaps; SIGTERM then SIGKILL if it overstayed
        self._dir.cleanup()
