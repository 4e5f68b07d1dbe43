"""`push_metrics`: one service/environment's metrics to a Prometheus Pushgateway."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import push_to_gateway

from safeship.errors import StoreError
from safeship.http import make_client
from safeship.redact import redact_url, shown, url_password_forms

if TYPE_CHECKING:
    from safeship.config import PushgatewaySettings
    from safeship.metrics import DeploymentMetrics

logger = logging.getLogger("safeship.metrics")


class _GroupView:
    """The series of one `(service, environment)` group of a registry, for a push.

    The Pushgateway overwrites grouping-key labels in the pushed body, so pushing
    series of other environments under `environment=X` would relabel (and collide)
    them. Series without an `environment` label (the Prometheus query metrics) are
    kept and take the group's environment.
    """

    def __init__(self, registry: CollectorRegistry, service: str, environment: str) -> None:
        self._registry = registry
        self._service = service
        self._environment = environment

    def _keep(self, labels: dict[str, str]) -> bool:
        return (
            labels.get("service") == self._service
            and labels.get("environment", self._environment) == self._environment
        )

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            view = Metric(family.name, family.documentation, family.type, family.unit)
            view.samples = [s for s in family.samples if self._keep(s.labels)]
            if view.samples:
                yield view


def push_metrics(
    gateway_url: str,
    metrics: DeploymentMetrics,
    environment: str,
    job: str = "safeship",
    handler: Callable[..., Callable[[], None]] | None = None,
    *,
    service: str | None = None,
    timeout: float | None = 30,
) -> None:
    """Push one service/environment's metrics to a Pushgateway (HTTP PUT).

    The grouping key is `{service, environment}` — never the deployment id, or
    every rollout would leave a group behind forever. PUT replaces the group, which
    is right because the store-backed figures are complete running totals. Only
    the group's own series are pushed. `handler` is prometheus_client's push
    handler (tests pass one that captures the request).

    The pending query and analysis counts are flushed to the store first: pushing
    totals the store does not hold yet would make the next process's push look
    like a counter reset. A failed flush (`StoreError`) therefore pushes nothing.
    """
    resolved = service or metrics.service
    if resolved is None:
        raise ValueError("push_metrics needs a service: pass service=... or set it on metrics")
    metrics.flush()
    push_to_gateway(
        gateway_url,
        job=job,
        registry=_GroupView(metrics.registry, resolved, environment),
        grouping_key={"service": resolved, "environment": environment},
        timeout=timeout,
        handler=handler or deadline_handler,
    )


def deadline_handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
) -> Callable[[], None]:
    """prometheus_client's push handler, with `timeout` as the whole request's deadline.

    Its default handler (urllib) times out per socket read only, so a Pushgateway
    trickling its answer would hold a deploy's last step. Failures are `OSError`s,
    as the default handler's are.
    """

    def push() -> None:
        try:
            with make_client(timeout=timeout or 10.0) as client:
                response = client.request(method, url, headers=headers, content=data)
        except httpx.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            # The URL's user-info is sent as HTTP Basic: the answer may quote it back.
            answer = shown(response.text, url_password_forms(url))
            raise OSError(f"HTTP {response.status_code}: {answer}")

    return push


def push_or_warn(
    settings: PushgatewaySettings,
    metrics: DeploymentMetrics,
    environment: str,
    handler: Callable[..., Callable[[], None]] | None = None,
) -> str | None:
    """Push if a Pushgateway is configured; a failure is a warning, never the deploy's failure.

    Returns the warning (also logged), or None when pushed or not configured. A
    history store that cannot be written or read (the flush before the push, or
    the totals) is such a failure too: nothing is pushed then.
    """
    if not settings.url:
        return None
    try:
        push_metrics(
            settings.url,
            metrics,
            environment,
            job=settings.job,
            handler=handler,
            timeout=settings.timeout,
        )
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        warning = f"could not push metrics to the Pushgateway {redact_url(settings.url)}: {exc}"
        logger.debug(warning)  # the caller shows it, once
        return warning
    except StoreError as exc:  # its message already hides the store's password
        warning = f"metrics not pushed to the Pushgateway {redact_url(settings.url)}: {exc}"
        logger.debug(warning)  # the caller shows it, once
        return warning
    return None
