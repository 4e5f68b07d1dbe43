"""Where numbers come from: a provider measures canary and baseline over one window."""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from safeship.config import EnvironmentConfig, PrometheusProviderSettings, ScrapeProviderSettings
from safeship.providers.interface import MetricsProvider

if TYPE_CHECKING:
    from safeship.metrics import DeploymentMetrics


def build_provider(
    config: EnvironmentConfig, metrics: DeploymentMetrics | None = None
) -> MetricsProvider:
    """The metrics provider an environment's config names; every type is handled here."""
    settings = config.provider
    if isinstance(settings, ScrapeProviderSettings):
        from safeship.providers.scrape import ScrapeProvider

        return ScrapeProvider(
            canary_url=settings.canary_url,
            baseline_url=settings.baseline_url,
            timeout=settings.timeout,
            error_status_regex=settings.error_status,
            match=dict(settings.match),
            error_label=settings.error_label,
            poll_interval=settings.poll_interval,
        )
    if isinstance(settings, PrometheusProviderSettings):
        from safeship.prometheus.client import PrometheusClient
        from safeship.providers.prometheus import PrometheusProvider

        client = PrometheusClient(config.prometheus, workflow="analysis", metrics=metrics)
        return PrometheusProvider(
            settings,
            client,
            service=config.service,
            environment=config.environment,
            scrape_interval=config.prometheus.scrape_interval,
        )
    assert_never(settings)
