"""Which version runs in which slot during one rollout: what measurement follows.

A router has two slots; at the start of a rollout one is stable (serving the
version last promoted) and the other takes the new version. The rollout
records this placement before anything moves, so the canary is measured where
it was deployed and the baseline where the stable version runs, whichever
slot that is this time: scrape URLs and Prometheus label matchers are
templates over these variables, rendered once per rollout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safeship.errors import ConfigError
from safeship.redact import redact_text

VARIABLES = frozenset(
    {
        "canary_slot",
        "canary_address",
        "canary_version",
        "stable_slot",
        "stable_address",
        "stable_version",
    }
)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables_in(template: str) -> set[str]:
    """The `{{ name }}` variables a template uses."""
    return set(_VARIABLE.findall(template))


def unknown_variables(template: str) -> set[str]:
    return variables_in(template) - VARIABLES


@dataclass(frozen=True)
class SlotVersion:
    """One slot: its router name, its address if the router knows one, the version in it."""

    slot: str
    address: str | None
    version: str | None  # None: not known (no promotion recorded for this service yet)


@dataclass(frozen=True)
class Placement:
    """The canary's slot and version, and the stable slot with the version it serves."""

    canary: SlotVersion
    stable: SlotVersion

    def values(self) -> dict[str, str | None]:
        return {
            "canary_slot": self.canary.slot,
            "canary_address": self.canary.address,
            "canary_version": self.canary.version,
            "stable_slot": self.stable.slot,
            "stable_address": self.stable.address,
            "stable_version": self.stable.version,
        }

    def render(self, template: str, where: str) -> str:
        """Fill the template's variables; a variable without a value is a ConfigError.

        `where` names the setting (e.g. `provider.canary_url`) for the message.
        """
        values = self.values()
        missing = sorted(name for name in variables_in(template) if values.get(name) is None)
        if missing:
            raise ConfigError(
                f"{where} {redact_text(template)!r} needs {', '.join(missing)}, which this "
                "rollout does not "
                f"have ({self.describe()}); the router knows no address for a slot or no "
                f"version was promoted yet: set {where} explicitly"
            )
        return _VARIABLE.sub(lambda m: str(values[m.group(1)]), template)

    def with_stable_version(self, version: str) -> Placement:
        return Placement(self.canary, SlotVersion(self.stable.slot, self.stable.address, version))

    def describe(self) -> str:
        def one(role: str, s: SlotVersion) -> str:
            where = f" at {s.address}" if s.address else ""
            return f"{role} slot {s.slot}{where}: {s.version or 'version unknown'}"

        return f"{one('canary', self.canary)}; {one('stable', self.stable)}"

    def for_storage(self) -> dict[str, Any]:
        return {
            role: vars(s).copy() for role, s in (("canary", self.canary), ("stable", self.stable))
        }

    @classmethod
    def from_storage(cls, data: Mapping[str, Any] | None) -> Placement | None:
        """None for rollouts recorded before placements were."""
        if not data:
            return None
        return cls(SlotVersion(**data["canary"]), SlotVersion(**data["stable"]))
