"""Assemble a controller from configuration: the one place backends are chosen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry

from safeship.clock import Clock, SystemClock
from safeship.config import EnvironmentConfig
from safeship.metrics import DeploymentMetrics
from safeship.providers import build_provider
from safeship.rollout.controller import EventSink, RolloutController
from safeship.routers import build_router
from safeship.store.interface import Store


@contextmanager
def controller_for(
    settings: EnvironmentConfig,
    store: Store,
    *,
    clock: Clock | None = None,
    on_event: EventSink | None = None,
) -> Iterator[RolloutController]:
    """A controller wired to the configured router and provider; closes them afterwards."""
    clock = clock or SystemClock()
    metrics = DeploymentMetrics(CollectorRegistry(), store, service=settings.service, clock=clock)
    with contextlib.ExitStack() as stack:
        router = build_router(settings.router)
        stack.callback(router.close)
        provider = build_provider(settings, metrics)
        stack.callback(provider.close)
        yield RolloutController(
            settings,
            store=store,
            router=router,
            provider=provider,
            clock=clock,
            metrics=metrics,
            on_event=on_event,
        )
