"""The router interface every traffic backend implements.

Every router has two *slots* (HAProxy servers, nginx upstream servers,
Kubernetes Services or Deployments, the local proxy's two upstreams): one is
stable, the other is where the next canary goes. The controller asks for a
canary weight (0-100, the percentage of requests the canary slot receives) and
reads back the weight really in force, so a backend that cannot confirm a
change is an error, never a silent success. Promotion names the slot that
becomes stable, so repeating it (after a crash, say) can never swap back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


def check_weight(weight: int) -> None:
    """Refuse anything but an integer percentage (bool included: it is an int in Python)."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ValueError(f"canary weight must be an integer from 0 to 100, got {weight!r}")


@dataclass(frozen=True)
class RouterHealth:
    """Whether the router answers, with a human-readable detail."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Slot:
    """One of a router's two places a version runs.

    `name` is the router's own name for it (an HAProxy server, an nginx upstream
    server, a Kubernetes Deployment or Service, a local proxy slot); `address`
    is host:port when the router knows it. The pre-rollout hook gets both, to
    deploy into the canary slot; scrape URLs are rendered from the addresses.
    """

    name: str
    address: str | None = None


@dataclass(frozen=True)
class Slots:
    """The router's two slots as it has them now: the stable one, and the canary's."""

    stable: Slot
    canary: Slot


class Router(ABC):
    """Shifts traffic between the stable and the canary version of one service."""

    @abstractmethod
    def set_weight(self, weight: int) -> None:
        """Send `weight` percent of requests to the canary; raises `RouterError` on failure."""

    @abstractmethod
    def get_weight(self) -> int:
        """The canary weight actually in force, read from the router itself."""

    @abstractmethod
    def health(self) -> RouterHealth:
        """Whether the router is reachable and serving."""

    def achievable_weight(self, weight: int) -> int:
        """The weight this router really puts in force when asked for `weight`.

        Most routers split traffic exactly; one that splits by whole replicas
        (Kubernetes `replicas` mode) can only approximate it, and the controller
        confirms against this value instead of the requested one.
        """
        return weight

    @abstractmethod
    def slots(self) -> Slots:
        """Which slot is stable and which takes the canary, read from the router itself."""

    @abstractmethod
    def promote(self, slot: str) -> None:
        """Make `slot` the stable slot, serving all traffic; the next canary goes into the other.

        Safe to repeat: when `slot` is stable already, only its full weight is
        put in force again. Raises `RouterError` naming the slot when it cannot.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most routers hold nothing
        """Release connections; the router keeps its last weight."""
