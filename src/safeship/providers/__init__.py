"""Where numbers come from: a provider measures canary and baseline over one window."""

from typing import assert_never

from safeship.config import ProviderSettings, ScrapeProviderSettings
from safeship.providers.interface import MetricsProvider


def build_provider(settings: ProviderSettings) -> MetricsProvider:
    """The metrics provider a config names; every provider type is handled here."""
    if isinstance(settings, ScrapeProviderSettings):
        from safeship.providers.scrape import ScrapeProvider

        return ScrapeProvider(
            canary_url=settings.canary_url,
            baseline_url=settings.baseline_url,
            timeout=settings.timeout,
            error_status_regex=settings.error_status,
            match=dict(settings.match),
        )
    assert_never(settings)
