"""`KubernetesRouter`: the canary weight as Kubernetes objects, in one of four modes.

* `gateway-api`: the weights of two `backendRefs` (Services) of one HTTPRoute rule.
* `istio`: the weights of two destinations (subsets, or hosts) of one VirtualService
  http route.
* `smi`: the weights of two backends (Services) of a TrafficSplit.
* `replicas`: no traffic object at all; the split is the replica count of two
  Deployments behind one Service, so only whole pods are possible.

A weight `w` is written as `100 - w` for the stable slot and `w` for the canary
(routing modes), so the object reads as percentages. Which slot is stable lives on
the object itself (annotation `safeship.dev/stable-slot`; replicas mode: on the
first slot's Deployment), so every CI runner agrees without a local state file.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from typing import Any

from safeship.config import KubernetesRouterSettings
from safeship.errors import RouterError
from safeship.routers.interface import Router, RouterHealth, Slot, Slots, check_weight
from safeship.routers.kubernetes.api import (
    DEPLOYMENT,
    DEPLOYMENT_SCALE,
    HTTPROUTE,
    KINDS_BY_MODE,
    TRAFFICSPLITS,
    VIRTUALSERVICE,
    Kind,
    KubeApi,
    Mode,
    Obj,
)

log = logging.getLogger(__name__)

STABLE_SLOT = "safeship.dev/stable-slot"

# What each mode calls, per resource: the single source the RBAC manifests are tested against.
RBAC_VERBS: dict[Mode, dict[tuple[str, str], tuple[str, ...]]] = {
    mode: {(kind.group, kind.rbac_resource): kind.verbs for kind in kinds}
    for mode, kinds in KINDS_BY_MODE.items()
}


class KubernetesRouter(Router):
    """Sets and confirms the canary weight on a Kubernetes object (or two Deployments)."""

    def __init__(self, settings: KubernetesRouterSettings) -> None:
        if settings.mode == "replicas" and settings.replicas < 2:
            raise ValueError("replicas mode needs `replicas` >= 2: one pod cannot be split")
        self.settings = settings
        self.mode: Mode = settings.mode
        self.slot_names = settings.slots
        self.api = KubeApi(settings)

    @classmethod
    def from_settings(cls, settings: KubernetesRouterSettings) -> KubernetesRouter:
        return cls(settings)

    # -- Router --------------------------------------------------------------------------

    def set_weight(self, weight: int) -> None:
        check_weight(weight)
        if self.mode == "replicas":
            self._set_replicas(weight)
        else:
            self._set_route(weight)

    def get_weight(self) -> int:
        """The canary weight in force; replicas mode: the canary's share of pods (percent).

        The controller confirms it against `achievable_weight`, so a replica split
        that only approximates the weight asked for still confirms, and one changed
        by someone else does not.
        """
        if self.mode == "replicas":
            _, canary_pods, stable_pods = self._replica_split()
            return self._percent(canary_pods, stable_pods)
        obj = self.api.get(self._kind, self._name)
        stable = self._state(obj)
        weights = self._slot_weights(obj)
        return self._percent(weights[self._other(stable)], weights[stable])

    def health(self) -> RouterHealth:
        """Never raises: reads the object(s) and reports the split."""
        try:
            if self.mode == "replicas":
                stable, canary_pods, stable_pods = self._replica_split()
                detail = (
                    f"stable {stable}: {stable_pods} replicas, canary {self._other(stable)}: "
                    f"{canary_pods} replicas"
                )
            else:
                obj = self.api.get(self._kind, self._name)
                stable = self._state(obj)
                weights = self._slot_weights(obj)
                canary = self._other(stable)
                detail = (
                    f"stable {stable}: weight {weights[stable]}, "
                    f"canary {canary}: weight {weights[canary]}"
                )
        except RouterError as exc:
            return RouterHealth(ok=False, detail=str(exc))
        return RouterHealth(ok=True, detail=f"{self._where()}: {detail}")

    def slots(self) -> Slots:
        """Stable and canary slots; Services (gateway-api, smi) get their DNS names."""
        if self.mode == "replicas":
            stable = self._replica_state()
        else:
            stable = self._state(self.api.get(self._kind, self._name))
        return Slots(self._slot(stable), self._slot(self._other(stable)))

    def _slot(self, name: str) -> Slot:
        if self.mode in ("gateway-api", "smi"):
            return Slot(name, f"{name}.{self.settings.namespace}.svc.cluster.local")
        return Slot(name)

    def promote(self, slot: str) -> None:
        """All traffic to `slot`, recorded as the stable slot in the same write; safe to repeat."""
        if slot not in self.slot_names:
            raise RouterError(
                f"{self._where()}: cannot promote {slot!r}: slots are {list(self.slot_names)}"
            )
        if self.mode == "replicas":
            self._promote_replicas(slot)
        else:
            self._promote_route(slot)

    def close(self) -> None:
        self.api.close()

    # -- routing modes: one object holds weights and state, written in one update --------

    @property
    def _kind(self) -> Kind:
        if self.mode == "smi":
            return TRAFFICSPLITS[self.settings.smi_version]
        return {"gateway-api": HTTPROUTE, "istio": VIRTUALSERVICE}[self.mode]

    @property
    def _name(self) -> str:
        assert self.settings.name is not None  # the settings require it outside replicas mode
        return self.settings.name

    def _set_route(self, weight: int) -> None:
        def change(obj: Obj) -> bool:
            stable = self._state(obj)
            wanted = {stable: 100 - weight, self._other(stable): weight}
            return self._write_route(obj, wanted, {STABLE_SLOT: stable})

        self._confirm_route(self.api.modify(self._kind, self._name, change))

    def _promote_route(self, slot: str) -> None:
        def change(obj: Obj) -> bool:
            wanted = {slot: 100, self._other(slot): 0}
            return self._write_route(obj, wanted, {STABLE_SLOT: slot})

        self._confirm_route(self.api.modify(self._kind, self._name, change))

    def _write_route(self, obj: Obj, wanted: dict[str, int], notes: dict[str, str]) -> bool:
        """Put the weights and annotations into `obj`; False when it already holds them."""
        entries = self._slot_entries(obj)
        if self.mode == "istio":
            others = sum(
                _int(e.get("weight", 0), "weight")
                for e in self._rule_list(obj)
                if all(e is not mine for mine in entries.values())
            )
            if others:
                raise RouterError(
                    f"{self._where()}: other destinations of http[{self.settings.rule}] hold "
                    f"weight {others}; Istio sends each destination weight/(sum of all weights) "
                    "of the requests, so they would take a share of what safeship gives the "
                    "slots: the two slots must be the only weighted destinations"
                )
        changed = False
        for slot, value in wanted.items():
            if entries[slot].get("weight") != value:
                entries[slot]["weight"] = value
                changed = True
        annotations = obj["metadata"].setdefault("annotations", {})
        for key, note in notes.items():
            if annotations.get(key) != note:
                annotations[key] = note
                changed = True
        return changed

    def _confirm_route(self, written: Obj) -> None:
        """Read back and compare: a write the API server did not keep is an error."""
        wanted = self._slot_weights(written)
        wanted_state = self._state(written)
        obj = self.api.get(self._kind, self._name)
        if self._slot_weights(obj) != wanted or self._state(obj) != wanted_state:
            raise RouterError(
                f"{self._where()}: wrote weights {wanted}, read back {self._slot_weights(obj)}"
            )

    def _rule_list(self, obj: Obj) -> list[Any]:
        """The list of weighted entries the settings point at (backendRefs, route, backends)."""
        spec = obj.get("spec") or {}
        if self.mode == "smi":
            return _list(spec.get("backends"), "spec.backends", self._where())
        field, inner = ("rules", "backendRefs") if self.mode == "gateway-api" else ("http", "route")
        rules = _list(spec.get(field), f"spec.{field}", self._where())
        index = self.settings.rule
        if index >= len(rules):
            raise RouterError(
                f"{self._where()}: spec.{field} has {len(rules)} rule(s), "
                f"the router settings ask for rule {index}"
            )
        rule = rules[index] if isinstance(rules[index], dict) else {}
        return _list(rule.get(inner), f"spec.{field}[{index}].{inner}", self._where())

    def _entry_name(self, entry: Any) -> str | None:
        if not isinstance(entry, dict):
            return None
        if self.mode == "gateway-api":
            return _str_or_none(entry.get("name"))
        if self.mode == "smi":
            return _str_or_none(entry.get("service"))
        destination = entry.get("destination") or {}
        subset = destination.get("subset")
        return _str_or_none(subset if subset else destination.get("host"))

    def _slot_entries(self, obj: Obj) -> dict[str, dict[str, Any]]:
        """Each slot's entry in the weighted list; RouterError naming what exists otherwise."""
        entries = self._rule_list(obj)
        found: dict[str, dict[str, Any]] = {}
        for entry in entries:
            name = self._entry_name(entry)
            if name in self.slot_names:
                if name in found:
                    raise RouterError(f"{self._where()}: slot {name!r} appears more than once")
                found[name] = entry
        missing = [slot for slot in self.slot_names if slot not in found]
        if missing:
            names = [self._entry_name(e) for e in entries]
            raise RouterError(
                f"{self._where()}: no entry for slot(s) {missing}; the entries are named "
                f"{names}: fix `slots` in the router settings or add the backends to the object"
            )
        return found

    def _slot_weights(self, obj: Obj) -> dict[str, int]:
        entries = self._slot_entries(obj)
        # Gateway API defaults an unset weight to 1; Istio reads an unset weight as 0 when
        # there are several destinations (both slots are); SMI requires the field. Every
        # mode's weights are relative (a share is weight / sum); SMI v1alpha1's are
        # quantities ("500m"), read here in thousandths.
        default = 1 if self.mode == "gateway-api" else 0
        if self.mode == "smi" and self.settings.smi_version == "v1alpha1":
            return {
                slot: _milli_quantity(entry.get("weight", default), "weight")
                for slot, entry in entries.items()
            }
        return {
            slot: _int(entry.get("weight", default), "weight") for slot, entry in entries.items()
        }

    def _state(self, obj: Obj) -> str:
        """The stable slot from the object's annotations; the first slot by default."""
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        stable = annotations.get(STABLE_SLOT, self.slot_names[0])
        if not isinstance(stable, str) or stable not in self.slot_names:
            raise RouterError(
                f"{self._where()}: annotation {STABLE_SLOT}={stable!r} names no slot of "
                f"{list(self.slot_names)}; fix the annotation or `slots`"
            )
        return stable

    # -- replicas mode: pods of two Deployments --------------------------------------------

    def achievable_weight(self, weight: int) -> int:
        """What `weight` really becomes: exact in routing modes; in replicas mode the
        canary's share of whole pods (percent, rounded), e.g. 10 of 3 pods -> 1 pod = 33."""
        check_weight(weight)
        if self.mode != "replicas":
            return weight
        canary, stable = self._pods_for(weight)
        return self._percent(canary, stable)

    def _pods_for(self, weight: int) -> tuple[int, int]:
        """(canary, stable) pods: nearest split (halves up), never all or none if 0 < w < 100."""
        total = self.settings.replicas
        canary = (total * weight * 2 + 100) // 200
        if 0 < weight < 100:
            canary = min(max(canary, 1), total - 1)
        return canary, total - canary

    @property
    def _anchor(self) -> str:
        """The Deployment holding the annotations: the first slot's."""
        return self.slot_names[0]

    def _replica_state(self) -> str:
        return self._state(self.api.get(DEPLOYMENT, self._anchor))

    def _replica_split(self) -> tuple[str, int, int]:
        """(stable slot, canary pods, stable pods) as the API server has them."""
        stable = self._replica_state()
        return stable, self._replicas_of(self._other(stable)), self._replicas_of(stable)

    def _replicas_of(self, deployment: str) -> int:
        scale = self.api.get(DEPLOYMENT_SCALE, deployment)
        return _int((scale.get("spec") or {}).get("replicas", 0), "spec.replicas")

    def _set_replicas(self, weight: int) -> None:
        stable = self._replica_state()
        canary = self._other(stable)
        canary_pods, stable_pods = self._pods_for(weight)
        self._scale({canary: canary_pods, stable: stable_pods})
        self._annotate({STABLE_SLOT: stable})
        achieved = self._percent(canary_pods, stable_pods)
        if achieved != weight:
            log.info(
                "%s: weight %d%% asked, %d of %d pods on %s = %d%%",
                self._where(),
                weight,
                canary_pods,
                self.settings.replicas,
                canary,
                achieved,
            )

    def _promote_replicas(self, slot: str) -> None:
        self._scale({slot: self.settings.replicas, self._other(slot): 0})
        self._annotate({STABLE_SLOT: slot})

    def _scale(self, pods: dict[str, int]) -> None:
        """Scale up before scaling down, so the Service never has fewer pods than asked."""
        current = {name: self._replicas_of(name) for name in pods}
        for name in sorted(pods, key=lambda n: pods[n] <= current[n]):
            wanted = pods[name]

            def change(scale: Obj, wanted: int = wanted) -> bool:
                spec = scale.setdefault("spec", {})
                if spec.get("replicas") == wanted:
                    return False
                spec["replicas"] = wanted
                return True

            self.api.modify(DEPLOYMENT_SCALE, name, change)
        in_force = {name: self._replicas_of(name) for name in pods}
        if in_force != pods:
            raise RouterError(f"{self._where()}: scaled to {pods}, read back {in_force}")

    def _annotate(self, notes: dict[str, str]) -> None:
        def change(obj: Obj) -> bool:
            annotations = obj["metadata"].setdefault("annotations", {})
            if all(annotations.get(k) == v for k, v in notes.items()):
                return False
            annotations.update(notes)
            return True

        self.api.modify(DEPLOYMENT, self._anchor, change)
        annotations = self.api.get(DEPLOYMENT, self._anchor)["metadata"].get("annotations") or {}
        if any(annotations.get(k) != v for k, v in notes.items()):
            raise RouterError(f"{self._where()}: annotations {notes} not kept by the API server")

    # -- shared --------------------------------------------------------------------------

    def _other(self, slot: str) -> str:
        return self.slot_names[1] if slot == self.slot_names[0] else self.slot_names[0]

    def _where(self) -> str:
        ns = self.settings.namespace
        if self.mode == "replicas":
            first, second = self.slot_names
            return f"kubernetes router (replicas) Deployments {ns}/{first},{second}"
        return f"kubernetes router ({self.mode}) {self._kind.kind} {ns}/{self._name}"

    def _percent(self, canary: int, stable: int) -> int:
        total = canary + stable
        if total == 0:
            raise RouterError(
                f"{self._where()}: both {self.slot_names[0]} and {self.slot_names[1]} have "
                "weight 0 (or 0 replicas): nothing is served"
            )
        return (canary * 200 + total) // (2 * total)


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RouterError(f"kubernetes router: {field} must be an integer, found {value!r}")
    return value


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G)?$")
_SUFFIX = {"m": Fraction(1, 1000), "k": Fraction(1000), "M": Fraction(10**6), "G": Fraction(10**9)}


def _milli_quantity(value: Any, field: str) -> int:
    """A Kubernetes quantity as SMI v1alpha1 weights are written (10, "1.5", "500m"), in
    thousandths; anything else (negative, an exponent, binary suffixes) is refused."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value * 1000
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise RouterError(
            f"kubernetes router: {field} must be a quantity such as 100 or 500m, found {value!r}"
        )
    amount = Fraction(match.group(1)) * _SUFFIX.get(match.group(2) or "", Fraction(1))
    return int(amount * 1000)


def _list(value: Any, field: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RouterError(f"{where}: {field} is missing or not a list")
    return value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
