"""The router interface every traffic backend implements.

The controller only ever asks for a canary weight (0-100, the percentage of
requests the canary receives) and reads back the weight really in force, so a
backend that cannot confirm a change is an error, never a silent success.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class RouterHealth:
    """Whether the router answers, with a human-readable detail."""

    ok: bool
    detail: str


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
