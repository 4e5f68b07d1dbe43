"""The `haproxy` router: HAProxy 2.6 through its Runtime API (the admin socket).

One backend holds two servers, the *slots* (blue and green by default). The
stable slot is recorded in a small JSON state file; the canary is the other
one. A canary weight `w` (0-100) becomes HAProxy weights `100 - w` on the
stable server and `w` on the canary, set with `set weight` (applied at once,
no reload) and confirmed with `get weight`. HAProxy weights are relative, so
weight 0 means "no new requests" for that server.

Promotion sends all traffic to the canary slot and records it as the new
stable slot, so the next rollout deploys into the other one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

from safeship.config import HaproxyRouterSettings
from safeship.errors import RouterError
from safeship.routers.interface import Router, RouterHealth, Slot

_GET_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]+\]|[^/:\[\]]+):(?P<port>\d+)$")
# Server names HAProxy accepts; refusing others keeps a command on one line.
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class HaproxyRouter(Router):
    """Sets and confirms the canary weight of one HAProxy backend over its Runtime API."""

    def __init__(
        self,
        socket_address: str,
        backend: str = "app",
        slots: tuple[str, str] = ("blue", "green"),
        state_file: str | Path = ".safeship/haproxy-router.json",
        timeout: float = 2.0,
    ) -> None:
        for name in (backend, *slots):
            if not _NAME.match(name):
                raise ValueError(f"invalid HAProxy backend or server name: {name!r}")
        if len(slots) != 2 or slots[0] == slots[1]:
            raise ValueError(f"slots must be two different server names, got {slots!r}")
        self.socket_address = socket_address
        self.backend = backend
        self.slots = slots
        self.state_file = Path(state_file)
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: HaproxyRouterSettings) -> HaproxyRouter:
        return cls(
            settings.socket,
            backend=settings.backend,
            slots=settings.slots,
            state_file=settings.state_file,
            timeout=settings.timeout,
        )

    # -- slots -------------------------------------------------------------

    @property
    def stable_server(self) -> str:
        """The server name (slot) serving the stable version, from the state file."""
        stable: str = self._read_state()["stable"]
        return stable

    @property
    def canary_server(self) -> str:
        """The other slot: where the canary version is deployed."""
        stable = self.stable_server
        return self.slots[1] if stable == self.slots[0] else self.slots[0]

    # -- Router ------------------------------------------------------------

    def set_weight(self, weight: int) -> None:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise ValueError(f"canary weight must be an integer from 0 to 100, got {weight!r}")
        state = self._read_state()
        stable, canary = self._pair(state)
        self._apply({stable: 100 - weight, canary: weight})
        if weight > 0 and state.get("promoted"):
            # The canary slot gets traffic again: a new rollout, so the next
            # promote() is a real one, not a repeat of the last.
            self._write_state(stable, promoted=False)

    def get_weight(self) -> int:
        stable, canary = self._pair(self._read_state())
        stable_weight = self._get_server_weight(stable)
        canary_weight = self._get_server_weight(canary)
        return self._percent(stable_weight, canary_weight)

    def health(self) -> RouterHealth:
        """Never raises: an unreachable Runtime API is an unhealthy router; the detail says why."""
        try:
            self._command("show servers state " + self.backend)
            stable, canary = self._pair(self._read_state())
            for server in (stable, canary):
                self._get_server_weight(server)
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        return RouterHealth(ok=True, detail=f"{self._where()}: ok")

    def canary_slot(self) -> Slot:
        """The canary server and the address HAProxy sends its traffic to."""
        canary = self.canary_server
        return Slot(canary, self._server_address(canary))

    def promote(self) -> None:
        """All traffic to the canary slot, then record it as the stable slot; safe to repeat."""
        state = self._read_state()
        stable, canary = self._pair(state)
        if state.get("promoted"):
            # Already promoted and no traffic to the other slot since: a repeat.
            self._apply({stable: 100, canary: 0})
            return
        self._apply({stable: 0, canary: 100})
        self._write_state(canary, promoted=True)

    def promoted(self) -> None:
        """Record the canary slot as stable (idempotent: a repeat changes nothing)."""
        self.promote()

    def rollback(self) -> None:
        self.set_weight(0)

    # -- internals ---------------------------------------------------------

    def _where(self) -> str:
        return f"haproxy router {self.socket_address} backend {self.backend}"

    def _pair(self, state: dict[str, Any]) -> tuple[str, str]:
        stable: str = state["stable"]
        canary = self.slots[1] if stable == self.slots[0] else self.slots[0]
        return stable, canary

    def _apply(self, weights: dict[str, int]) -> None:
        """Set and confirm each server's weight, raising before lowering so none is ever empty."""
        current = {server: self._get_server_weight(server) for server in weights}
        order = sorted(weights, key=lambda server: weights[server] <= current[server])
        for server in order:
            if weights[server] != current[server]:
                self._expect_empty(f"set weight {self.backend}/{server} {weights[server]}")
        for server in order:
            in_force = self._get_server_weight(server)
            if in_force != weights[server]:
                raise RouterError(
                    f"{self._where()}: set weight of {server} to {weights[server]}, "
                    f"but HAProxy reports {in_force}"
                )

    def _percent(self, stable_weight: int, canary_weight: int) -> int:
        total = stable_weight + canary_weight
        if total == 0:
            raise RouterError(
                f"{self._where()}: both {self.slots[0]} and {self.slots[1]} have weight 0, "
                "the backend serves no requests"
            )
        return round(100 * canary_weight / total)

    def _server_address(self, server: str) -> str | None:
        """host:port of `server` from `show servers state` (None if HAProxy has no port)."""
        lines = self._command(f"show servers state {self.backend}").splitlines()
        header = next((line for line in lines if line.startswith("# ")), None)
        if header is None:
            raise RouterError(f"{self._where()}: `show servers state` answered {lines[:2]!r}")
        columns = header[2:].split()
        for line in lines:
            fields = line.split()
            if len(fields) == len(columns) and not line.startswith("#"):
                row = dict(zip(columns, fields, strict=True))
                if row.get("srv_name") == server:
                    address, port = row.get("srv_addr", "-"), row.get("srv_port", "0")
                    host = f"[{address}]" if ":" in address else address
                    return f"{host}:{port}" if port not in ("0", "-") else None
        raise RouterError(f"{self._where()}: no server {server!r} in backend {self.backend}")

    def _get_server_weight(self, server: str) -> int:
        answer = self._command(f"get weight {self.backend}/{server}")
        match = _GET_WEIGHT.match(answer)
        if match is None:
            raise RouterError(
                f"{self._where()}: get weight {self.backend}/{server} answered {answer[:200]!r}"
            )
        return int(match.group(1))

    def _expect_empty(self, command: str) -> None:
        answer = self._command(command)
        if answer:
            raise RouterError(f"{self._where()}: {command!r} answered {answer[:200]!r}")

    def _command(self, command: str) -> str:
        """One Runtime API command on a fresh connection; every failure is a RouterError."""
        what = f"{self._where()}: {command!r}"
        try:
            with self._connect() as conn:
                conn.sendall(command.encode() + b"\n")
                conn.shutdown(socket.SHUT_WR)
                chunks: list[bytes] = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except TimeoutError:
            raise RouterError(f"{what} timed out after {self._timeout}s") from None
        except OSError as exc:
            raise RouterError(f"{what} failed: {exc}") from None
        answer = b"".join(chunks).decode(errors="replace").strip()
        if answer.startswith(("Unknown command", "Permission denied")):
            raise RouterError(f"{what} answered {answer.splitlines()[0][:200]!r}")
        return answer

    def _connect(self) -> socket.socket:
        match = _HOST_PORT.match(self.socket_address)
        if match is not None:
            host = match.group("host").strip("[]")
            return socket.create_connection((host, int(match.group("port"))), self._timeout)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(self._timeout)
            conn.connect(self.socket_address)
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_state(self) -> dict[str, Any]:
        try:
            raw = self.state_file.read_text()
        except FileNotFoundError:
            return {"stable": self.slots[0], "promoted": False}
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot read {self.state_file}: {exc}") from None
        try:
            state = json.loads(raw)
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("stable") not in self.slots:
            raise RouterError(
                f"{self._where()}: state file {self.state_file} must hold "
                f'{{"stable": one of {list(self.slots)}}}, found {raw[:200]!r}'
            )
        return state

    def _write_state(self, stable: str, promoted: bool) -> None:
        payload = json.dumps({"stable": stable, "promoted": promoted}) + "\n"
        directory = self.state_file.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.state_file.name, suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.state_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot write {self.state_file}: {exc}") from None
