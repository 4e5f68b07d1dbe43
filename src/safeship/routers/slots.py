"""Two slots, one stable: the bookkeeping HAProxy and nginx routers share.

A service behind such a router has two servers (slots). The stable slot is
recorded in a small JSON state file; the canary is the other one. A canary
weight `w` (0-100) becomes `100 - w` on the stable slot and `w` on the canary.
Promotion sends all traffic to the canary slot and records it as the stable
one, so the next rollout deploys into the other; a `promoted` flag makes a
repeated promotion a no-op instead of a swap back.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

from safeship.errors import RouterError
from safeship.files import write_atomically
from safeship.routers.interface import Router, check_weight


class SlotRouter(Router):
    """A router over two named slots whose stable slot lives in `state_file`."""

    def __init__(self, slots: tuple[str, str], state_file: str | Path) -> None:
        if len(slots) != 2 or slots[0] == slots[1]:
            raise ValueError(f"slots must be two different server names, got {slots!r}")
        self.slots = slots
        self.state_file = Path(state_file)

    @abstractmethod
    def _where(self) -> str:
        """Which router this is, to start every error message."""

    @abstractmethod
    def _apply(self, stable: str, weights: dict[str, int]) -> None:
        """Put `weights` (slot -> weight) in force and confirm them; `stable` is the stable slot."""

    @abstractmethod
    def _live_weights(self) -> dict[str, int]:
        """Each slot's weight as the router itself reports it."""

    @property
    def stable_server(self) -> str:
        """The slot serving the stable version, from the state file."""
        return self._pair(self._read_state())[0]

    @property
    def canary_server(self) -> str:
        """The other slot: where the canary version is deployed."""
        return self._pair(self._read_state())[1]

    def set_weight(self, weight: int) -> None:
        check_weight(weight)
        state = self._read_state()
        stable, canary = self._pair(state)
        self._apply(stable, {stable: 100 - weight, canary: weight})
        if weight > 0 and state.get("promoted"):
            # The canary slot gets traffic again: a new rollout, so the next
            # promote() is a real one, not a repeat of the last.
            self._write_state(stable, promoted=False)

    def get_weight(self) -> int:
        stable, canary = self._pair(self._read_state())
        weights = self._live_weights()
        total = weights[stable] + weights[canary]
        if total == 0:
            raise RouterError(
                f"{self._where()}: both {stable} and {canary} have weight 0, "
                "the service gets no requests"
            )
        return round(100 * weights[canary] / total)

    def promote(self) -> None:
        """All traffic to the canary slot, then record it as the stable slot; safe to repeat."""
        state = self._read_state()
        stable, canary = self._pair(state)
        if state.get("promoted"):
            # Already promoted and no traffic to the other slot since: a repeat.
            self._apply(stable, {stable: 100, canary: 0})
            return
        self._apply(canary, {stable: 0, canary: 100})
        self._write_state(canary, promoted=True)

    def promoted(self) -> None:
        """Record the canary slot as stable (idempotent: a repeat changes nothing)."""
        self.promote()

    def rollback(self) -> None:
        self.set_weight(0)

    def _pair(self, state: dict[str, Any]) -> tuple[str, str]:
        stable: str = state["stable"]
        canary = self.slots[1] if stable == self.slots[0] else self.slots[0]
        return stable, canary

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
        try:
            write_atomically(self.state_file, payload.encode())
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot write {self.state_file}: {exc}") from None
