"""What every subcommand may need from the root command: the config file and the store."""

from __future__ import annotations

from dataclasses import dataclass

import click

from safeship.config import (
    Config,
    PrometheusSettings,
    PushgatewaySettings,
    StoreSettings,
    load_config,
)


@dataclass
class Context:
    config_path: str | None
    store_url: str | None = None
    pushgateway_url: str | None = None
    prometheus_url: str | None = None

    def load(self) -> Config:
        """The config, with the root options (flag or environment) over the file's values."""
        config = load_config(self.config_path)
        if self.store_url:
            config = config.model_copy(update={"store": StoreSettings(url=self.store_url)})
        if self.pushgateway_url:
            pushgateway = PushgatewaySettings.model_validate(
                {**config.pushgateway.model_dump(), "url": self.pushgateway_url}
            )
            config = config.model_copy(update={"pushgateway": pushgateway})
        if self.prometheus_url:
            config = with_prometheus_url(config, self.prometheus_url)
        return config

    def history(self) -> tuple[str, str | None]:
        """Store URL and service for commands that only read history.

        With `--store` they need no config file, so the demo's history (or a CI
        run's) can be read anywhere; the service filter then comes from the
        config only if there is one to read.
        """
        if self.store_url:
            return self.store_url, None
        config = self.load()
        return config.store.url, config.service


def with_prometheus_url(config: Config, url: str) -> Config:
    """`config` with `url` as the Prometheus URL of the top level and every environment."""

    def override(settings: PrometheusSettings) -> PrometheusSettings:
        return PrometheusSettings.model_validate({**settings.model_dump(), "url": url})

    environments = {
        name: env.model_copy(update={"prometheus": override(env.prometheus)})
        if env.prometheus is not None
        else env
        for name, env in config.environments.items()
    }
    return config.model_copy(
        update={"prometheus": override(config.prometheus), "environments": environments}
    )


pass_context = click.make_pass_decorator(Context)
