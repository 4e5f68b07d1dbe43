"""The router interface every traffic backend implements.

The controller only ever asks for a canary weight (0-100, the percentage of
requests the canary receives) and reads back the weight really in force, so a
backend that cannot confirm a change is an error, never a silent success.
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
    """Where the canary version is deployed on a slot-based router.

    `name` is the router's own name for it (an HAProxy server, an nginx upstream
    server, a Kubernetes Deployment or Service); `address` is host:port when the
    router knows it. The pre-rollout hook gets both, to deploy into that slot.
    """

    name: str
    address: str | None = None


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

    def canary_slot(self) -> Slot | None:
        """The slot the next canary goes into; None for routers without slots."""
        return None

    def promote(self) -> None:
        """Send all traffic to the canary (promotion)."""
        self.set_weight(100)

    def promoted(self) -> None:  # noqa: B027 - optional hook, most routers hold nothing
        """The rollout was promoted at weight 100; slot-based routers record the canary
        slot as the new stable one here, so the next rollout deploys into the other."""

    def rollback(self) -> None:
        """Send no traffic to the canary; safe to repeat."""
        self.set_weight(0)

    def close(self) -> None:  # noqa: B027 - optional hook, most routers hold nothing
        """Release connections; the router keeps its last weight."""
