"""What every subcommand may need from the root command: the config file and the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from safeship.config import (
    Config,
    EnvironmentConfig,
    PrometheusSettings,
    PushgatewaySettings,
    StoreSettings,
    load_config,
    secret_values,
)
from safeship.errors import ConfigError
from safeship.redact import remember_secrets


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
            pushgateway = _validated(
                PushgatewaySettings,
                {**config.pushgateway.model_dump(), "url": self.pushgateway_url},
                "--pushgateway / PUSHGATEWAY_URL",
            )
            config = config.model_copy(update={"pushgateway": pushgateway})
        if self.prometheus_url:
            config = with_prometheus_url(config, self.prometheus_url)
        # for every message this process prints (not every ${VAR}: a port is no secret)
        remember_secrets(secret_values(config, interpolated=False))
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


def environment_settings(config: Config, environment: str | None) -> EnvironmentConfig:
    """One environment's settings; without `--env` the config must have exactly one."""
    if environment is None:
        if len(config.environments) != 1:
            raise ConfigError(
                f"--env is required: the config has environments {', '.join(config.environments)}"
            )
        environment = next(iter(config.environments))
    return config.for_environment(environment)


def prometheus_settings(url: str | None) -> PrometheusSettings:
    """Prometheus settings from a URL alone (when there is no config file)."""
    return _validated(PrometheusSettings, {"url": url}, "--url / PROMETHEUS_URL")


def with_prometheus_url(config: Config, url: str) -> Config:
    """`config` with `url` as the Prometheus URL of the top level and every environment."""

    def override(settings: PrometheusSettings) -> PrometheusSettings:
        return _validated(
            PrometheusSettings,
            {**settings.model_dump(), "url": url},
            "--prometheus-url / --url / PROMETHEUS_URL",
        )

    environments = {
        name: env.model_copy(update={"prometheus": override(env.prometheus)})
        if env.prometheus is not None
        else env
        for name, env in config.environments.items()
    }
    return config.model_copy(
        update={"prometheus": override(config.prometheus), "environments": environments}
    )


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: dict[str, Any], where: str) -> M:
    """A setting given on the command line or in the environment, validated like the file."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None


pass_context = click.make_pass_decorator(Context)
