"""The `haproxy` router: HAProxy 2.6 through its Runtime API (the admin socket).

One backend holds two servers, the *slots* (blue and green by default; see
routers/slots.py for the stable/canary bookkeeping). Weights are set with
`set weight` (applied to the next request, no reload) and confirmed with
`get weight`. HAProxy weights are relative, so weight 0 means "no new
requests" for that server: it drains.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from safeship.config import HaproxyRouterSettings
from safeship.errors import RouterError
from safeship.redact import shown
from safeship.routers.interface import RouterHealth
from safeship.routers.slots import SlotRouter

_GET_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]+\]|[^/:\[\]]+):(?P<port>\d+)$")
# Server names HAProxy accepts; refusing others keeps a command on one line.
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class HaproxyRouter(SlotRouter):
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
        super().__init__(slots, state_file)
        self.socket_address = socket_address
        self.backend = backend
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

    # -- Router ------------------------------------------------------------

    def health(self) -> RouterHealth:
        """Never raises: an unreachable Runtime API is an unhealthy router; the detail says why."""
        try:
            self._command("show servers state " + self.backend)
            self._read_state()
            self._live_weights()
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        return RouterHealth(ok=True, detail=f"{self._where()}: ok")

    # -- internals ---------------------------------------------------------

    def _where(self) -> str:
        return f"haproxy router {self.socket_address} backend {self.backend}"

    def _apply(self, stable: str, weights: dict[str, int]) -> None:
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

    def _live_weights(self) -> dict[str, int]:
        return {server: self._get_server_weight(server) for server in self.slot_names}

    def _address(self, server: str) -> str | None:
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
                f"{self._where()}: get weight {self.backend}/{server} answered {shown(answer)!r}"
            )
        return int(match.group(1))

    def _expect_empty(self, command: str) -> None:
        answer = self._command(command)
        if answer:
            raise RouterError(f"{self._where()}: {command!r} answered {shown(answer)!r}")

    def _command(self, command: str) -> str:
        """One Runtime API command on a fresh connection; every failure is a RouterError.

        `timeout` is the deadline of the whole exchange, so an answer trickling in
        slower than it fails like a silent socket.
        """
        what = f"{self._where()}: {command!r}"
        deadline = time.monotonic() + self._timeout
        try:
            with self._connect() as conn:
                conn.sendall(command.encode() + b"\n")
                conn.shutdown(socket.SHUT_WR)
                chunks: list[bytes] = []
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    conn.settimeout(left)
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except TimeoutError:
            raise RouterError(f"{what} timed out after {self._timeout}s") from None
        except OSError as exc:
            raise RouterError(f"{what} failed: {exc}") from None
        answer = b"".join(chunks).decode(errors="replace").strip()
        if answer.startswith(("Unknown command", "Permission denied")):
            raise RouterError(f"{what} answered {shown(answer).splitlines()[0]!r}")
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
