"""The `nginx` router: weights of one upstream block in an include file safeship owns.

nginx cannot change upstream weights at run time (that is nginx Plus), so
every change rewrites the include file and reloads nginx gracefully: the
master starts new workers on the new configuration and the old ones finish
the requests they hold. The file declares two things:

* `upstream <name>` with the two servers (the *slots*). A canary weight `w`
  (0-100) becomes weights `100 - w` on the stable server and `w` on the
  canary; nginx refuses `weight=0`, so a slot at 0 is written `down` (both
  servers stay in the block, so the next change is a weight change, not a
  new server). A shared-memory `zone` makes the workers share one
  round-robin state, so the split is exact across workers, not per worker.
* a loopback status server answering `GET /safeship/<name>` with the weights
  and a *generation* id unique to each write. A reload only asks nginx to
  reload, and a new configuration that cannot bind its sockets is dropped
  by the master with a line in its error log, so a change counts as done
  only once the status server answers with the new generation: the weights
  read back come from the workers that serve traffic, not from the file.

Each change keeps the previous file, writes the new one atomically, runs
`nginx -t`, and restores the previous file if the test, the reload or its
confirmation fails, so the file on disk is the configuration nginx runs.

The reload is `nginx -s reload` with the same `-c` and `-p` as the test,
rather than SIGHUP to a pid read by hand: nginx finds its own pid file from
its configuration (the `pid` directive or its built-in default), which
safeship would otherwise have to parse nginx.conf to know.

The stable slot is recorded in a small JSON state file, as for HAProxy;
promotion sends all traffic to the canary slot and records it as stable, so
the next rollout deploys into the other one.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from safeship.config import NginxRouterSettings
from safeship.errors import RouterError
from safeship.files import write_atomically
from safeship.http import make_client
from safeship.redact import shown
from safeship.routers.interface import RouterHealth, check_weight
from safeship.routers.slots import SlotRouter

# nginx starts each line of its complaints with `nginx: ` or, once the config
# names an error log, a timestamp and `pid#tid: ` after the level; the rest is
# the message, with file:line.
_NGINX_PREFIX = re.compile(
    r"^(?:nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(?:(\[\w+\]) (?:\d+#\d+: )?)?"
)
_MESSAGE_LIMIT = 600
# How often the status server is asked for the new generation after a reload,
# and how long only the new generation must answer (past the 100 ms nginx's
# master waits before retiring the old workers) for the change to count.
_POLL_INTERVAL = 0.02
_SETTLE = 0.3


class NginxRouter(SlotRouter):
    """Sets the canary weight by rewriting an nginx include file, testing and reloading."""

    def __init__(
        self,
        include_file: str | Path,
        slots: Mapping[str, str],
        upstream: str = "app",
        status_listen: str = "127.0.0.1:8089",
        binary: str = "nginx",
        config_file: str | Path | None = None,
        prefix: str | Path | None = None,
        state_file: str | Path = ".safeship/nginx-router.json",
        timeout: float = 10.0,
    ) -> None:
        # Validated as NginxRouterSettings: names and addresses are safe to write
        # into the nginx file and the status JSON without quoting.
        settings = NginxRouterSettings(
            upstream=upstream,
            include_file=str(include_file),
            slots=dict(slots),
            status_listen=status_listen,
            binary=binary,
            config_file=None if config_file is None else str(config_file),
            prefix=None if prefix is None else str(prefix),
            state_file=str(state_file),
            timeout=timeout,
        )
        names = list(settings.slots)
        super().__init__((names[0], names[1]), settings.state_file)
        self.include_file = Path(settings.include_file)
        self.upstream = settings.upstream
        self.addresses = dict(settings.slots)
        self.status_listen = settings.status_listen
        self.status_url = f"http://{settings.status_listen}/safeship/{settings.upstream}"
        self.binary = settings.binary
        self.config_file = settings.config_file
        self.prefix = settings.prefix
        self._timeout = settings.timeout
        # `Connection: close`: an idle pooled connection to a worker that a reload
        # retires would be closed under us.
        self._client = make_client(
            timeout=min(settings.timeout, 2.0),
            headers={"Connection": "close"},
            trust_env=False,
        )

    @classmethod
    def from_settings(cls, settings: NginxRouterSettings) -> NginxRouter:
        return cls(
            settings.include_file,
            settings.slots,
            upstream=settings.upstream,
            status_listen=settings.status_listen,
            binary=settings.binary,
            config_file=settings.config_file,
            prefix=settings.prefix,
            state_file=settings.state_file,
            timeout=settings.timeout,
        )

    def _address(self, slot: str) -> str | None:
        return self.addresses[slot]

    # -- Router ------------------------------------------------------------

    def _live_weights(self) -> dict[str, int]:
        weights: dict[str, int] = self._live()["weights"]
        return weights

    def health(self) -> RouterHealth:
        """Never raises: an unreachable status server means unhealthy; the detail says why."""
        try:
            self._pair(self._read_state())
            live = self._live()
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        return RouterHealth(
            ok=True, detail=f"{self._where()}: ok, generation {live['generation']} in force"
        )

    def close(self) -> None:
        self._client.close()

    # -- the include file --------------------------------------------------

    def render(self, weights: Mapping[str, int], stable: str, generation: str) -> str:
        """The include file for these server weights (0 is written `down`)."""
        lines = [
            "# Written by safeship (nginx router): every weight change rewrites this file.",
            f"upstream {self.upstream} {{",
            # Shared round-robin state: the split holds across all workers.
            f"    zone safeship_{self.upstream} 64k;",
        ]
        for name, address in self.addresses.items():
            role = "stable" if name == stable else "canary"
            server = f"weight={weights[name]}" if weights[name] > 0 else "down"
            lines.append(f"    server {address} {server};  # {name} ({role})")
        status = json.dumps(
            {
                "upstream": self.upstream,
                "generation": generation,
                "stable": stable,
                "weights": {name: weights[name] for name in self.addresses},
            },
            separators=(",", ":"),
        )
        lines += [
            "}",
            "",
            "# Read back by safeship: the weights and generation the workers really run.",
            "server {",
            f"    listen {self.status_listen};",
            "    access_log off;",
            f"    location = /safeship/{self.upstream} {{",
            "        default_type application/json;",
            # Names and addresses are validated: no quote, backslash or $ to escape.
            f"        return 200 '{status}\\n';",
            "    }",
            "}",
            "",
        ]
        return "\n".join(lines)

    def write_initial(self, weight: int = 0) -> None:
        """Write the include file without testing or reloading: before nginx first starts.

        nginx refuses to start while an `include` names a missing file, so the
        first file is written this way; every later change goes through
        `set_weight`, which tests and reloads.
        """
        check_weight(weight)
        stable, canary = self._pair(self._read_state())
        weights = {stable: 100 - weight, canary: weight}
        self._write_include(self.render(weights, stable, secrets.token_hex(6)).encode())

    def _apply(self, stable: str, weights: dict[str, int]) -> None:
        """Write, test, reload and confirm these weights, unless nginx already runs them."""
        try:
            live = self._live()
        except RouterError:
            live = None  # nginx may run an older file without the status server: rewrite it
        if live is not None and live["weights"] == weights and live["stable"] == stable:
            return
        generation = secrets.token_hex(6)
        try:
            previous: bytes | None = self.include_file.read_bytes()
        except FileNotFoundError:
            previous = None
        except OSError as exc:
            raise RouterError(
                f"{self._where()}: cannot read {self.include_file}: {exc}; "
                "safeship must be able to read and write the include file"
            ) from None
        self._write_include(self.render(weights, stable, generation).encode())
        try:
            self._nginx(["-t", "-q"], "test the configuration")
            self._nginx(["-s", "reload"], "reload")
            self._confirm(generation)
        except RouterError as exc:
            # The file goes back to what nginx runs, so no later reload (by anyone)
            # applies weights that were never confirmed.
            self._restore(previous)
            raise RouterError(
                f"{exc}; {self.include_file} restored to its previous content"
            ) from None

    def _confirm(self, generation: str) -> None:
        """Poll the status server until only workers of `generation` answer.

        The first answer from a new worker is not enough: nginx's master starts
        the new workers, pauses 100 ms, and only then tells the old ones to stop
        accepting, so for a moment either may take a connection. Each poll is a
        fresh connection, so old workers still accepting would answer some.
        """
        deadline = time.monotonic() + self._timeout
        seen = "nothing"
        new_since: float | None = None
        while True:
            now = time.monotonic()
            try:
                live = self._live()
            except RouterError as exc:
                seen, new_since = str(exc), None
            else:
                if live["generation"] != generation:
                    seen, new_since = f"generation {live['generation']}", None
                elif new_since is None:
                    seen, new_since = f"generation {generation}, settling", now
                elif now - new_since >= _SETTLE:
                    return
            if now >= deadline:
                raise RouterError(
                    f"{self._where()}: reloaded, but {self.status_url} did not report generation "
                    f"{generation} within {self._timeout:g}s (last: {seen}); nginx keeps its old "
                    "configuration when the new one cannot start: see nginx's error log "
                    "(a listen address in use?)"
                )
            time.sleep(_POLL_INTERVAL)

    def _nginx(self, args: list[str], what: str) -> None:
        command = [self.binary]
        if self.prefix is not None:
            command += ["-p", self.prefix]
        if self.config_file is not None:
            command += ["-c", self.config_file]
        command += args
        shown = " ".join(command)
        try:
            done = subprocess.run(command, capture_output=True, timeout=self._timeout, check=False)
        except FileNotFoundError:
            raise RouterError(
                f"{self._where()}: nginx binary {self.binary!r} not found; "
                "install nginx or set router.binary to its path (Debian: /usr/sbin/nginx)"
            ) from None
        except subprocess.TimeoutExpired:
            raise RouterError(
                f"{self._where()}: `{shown}` did not finish within {self._timeout:g}s"
            ) from None
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot run `{shown}`: {exc}") from None
        if done.returncode != 0:
            raise RouterError(
                f"{self._where()}: `{shown}` failed to {what} (exit {done.returncode}): "
                f"{_nginx_message(done.stderr or done.stdout)}"
            )

    def _restore(self, previous: bytes | None) -> None:
        try:
            if previous is None:
                self.include_file.unlink(missing_ok=True)
            else:
                self._write_include(previous)
        except RouterError as exc:
            raise RouterError(f"{exc}; it holds a configuration nginx refused: fix it") from None

    def _write_include(self, content: bytes) -> None:
        try:
            write_atomically(self.include_file, content)
        except OSError as exc:
            raise RouterError(
                f"{self._where()}: cannot write {self.include_file}: {exc}; "
                "safeship must be able to write the include file and its folder"
            ) from None

    # -- reading back ------------------------------------------------------

    def _live(self) -> dict[str, Any]:
        """What the nginx workers serve, from the status server; validated."""
        try:
            response = self._client.get(self.status_url)
        except httpx.HTTPError as exc:
            raise RouterError(
                f"{self._where()}: status server {self.status_url} unreachable ({exc!r}); "
                f"is nginx running and does its http block include {self.include_file}?"
            ) from None
        if response.status_code != 200:
            raise RouterError(
                f"{self._where()}: {self.status_url} answered HTTP {response.status_code}; "
                f"is {self.include_file} included in nginx's http block?"
            )
        try:
            live = response.json()
        except ValueError:
            live = None
        weights = live.get("weights") if isinstance(live, dict) else None
        if (
            not isinstance(live, dict)
            or not isinstance(live.get("generation"), str)
            or live.get("stable") not in self.slot_names
            or not isinstance(weights, dict)
            or set(weights) != set(self.slot_names)
            or not all(isinstance(w, int) and w >= 0 for w in weights.values())
        ):
            raise RouterError(
                f"{self._where()}: {self.status_url} answered {shown(response.text)!r}, "
                f"not the weights of slots {list(self.slot_names)}; was {self.include_file} "
                "written for other slots?"
            )
        return live

    # -- state -------------------------------------------------------------

    def _where(self) -> str:
        return f"nginx router {self.include_file} upstream {self.upstream}"


def _nginx_message(output: bytes) -> str:
    """nginx's complaint without its prefixes and timestamps, redacted and trimmed to a
    readable length.

    nginx names the file and line itself (`... in /etc/nginx/conf.d/app.conf:4`).
    """
    lines = [
        _NGINX_PREFIX.sub(r"\1 ", line.strip()).strip()
        for line in output.decode(errors="replace").splitlines()
        if line.strip()
    ]
    return shown("; ".join(lines) or "no message", limit=_MESSAGE_LIMIT)
