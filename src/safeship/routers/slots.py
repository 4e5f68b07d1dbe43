"""Two slots, one stable: the bookkeeping HAProxy and nginx routers share.

A service behind such a router has two servers (slots). The stable slot is
recorded in a small JSON state file; the canary is the other one. A canary
weight `w` (0-100) becomes `100 - w` on the stable slot and `w` on the canary.
Promotion of a slot sends it all traffic and records it as the stable one, so
the next rollout deploys into the other; promoting the slot that is stable
already only puts its full weight in force again.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

from safeship.errors import RouterError
from safeship.files import write_atomically
from safeship.redact import shown
from safeship.routers.interface import Router, Slot, Slots, check_weight


class SlotRouter(Router):
    """A router over two named slots whose stable slot lives in `state_file`."""

    def __init__(self, slots: tuple[str, str], state_file: str | Path) -> None:
        if len(slots) != 2 or slots[0] == slots[1]:
            raise ValueError(f"slots must be two different server names, got {slots!r}")
        self.slot_names = slots
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

    @abstractmethod
    def _address(self, slot: str) -> str | None:
        """host:port the router sends `slot`'s traffic to (None if it has no port)."""

    def slots(self) -> Slots:
        stable, canary = self._pair(self._read_state())
        return Slots(Slot(stable, self._address(stable)), Slot(canary, self._address(canary)))

    def set_weight(self, weight: int) -> None:
        check_weight(weight)
        state = self._read_state()
        stable, canary = self._pair(state)
        self._apply(stable, {stable: 100 - weight, canary: weight})

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

    def promote(self, slot: str) -> None:
        """All traffic to `slot`, then record it as the stable slot; safe to repeat."""
        if slot not in self.slot_names:
            raise RouterError(
                f"{self._where()}: cannot promote {slot!r}: slots are {self.slot_names}"
            )
        stable, other = self._pair(self._read_state())
        if slot == stable:
            self._apply(stable, {stable: 100, other: 0})
            return
        self._apply(slot, {stable: 0, slot: 100})
        self._write_state(slot)

    def _pair(self, state: dict[str, Any]) -> tuple[str, str]:
        stable: str = state["stable"]
        canary = self.slot_names[1] if stable == self.slot_names[0] else self.slot_names[0]
        return stable, canary

    def _read_state(self) -> dict[str, Any]:
        try:
            raw = self.state_file.read_text()
        except FileNotFoundError:
            return {"stable": self.slot_names[0]}
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot read {self.state_file}: {exc}") from None
        try:
            state = json.loads(raw)
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("stable") not in self.slot_names:
            raise RouterError(
                f"{self._where()}: state file {self.state_file} must hold "
                f'{{"stable": one of {list(self.slot_names)}}}, found {shown(raw)!r}'
            )
        return state

    def _write_state(self, stable: str) -> None:
        payload = json.dumps({"stable": stable}) + "\n"
        try:
            write_atomically(self.state_file, payload.encode())
        except OSError as exc:
            raise RouterError(f"{self._where()}: cannot write {self.state_file}: {exc}") from None
