"""What every subcommand may need from the root command: the config file and the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from safeship.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_STORE_PATH,
    DEFAULT_STORE_URL,
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
        return self._with_overrides(load_config(self.config_path))

    def embedded(self, service: str, environments: Iterable[str] = ("production",)) -> Config:
        """The embedded defaults for `service` (a config file with nothing else in it),
        with the root options over them as over a file's values."""
        data = {"service": service, "environments": {name: {} for name in environments}}
        return self._with_overrides(_validated(Config, data, "the embedded defaults"))

    def _with_overrides(self, config: Config) -> Config:
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

    def load_optional(self, defaults: str) -> Config | None:
        """The config if there is one to read, else None: no file was named (`--config`,
        SAFESHIP_CONFIG) and there is no ./safeship.yaml.

        Commands that need only the history store, the metrics or Grafana then run on
        the embedded defaults, described by `defaults`, which they say on stderr (never
        stdout: a `--json` reader is not disturbed). A file that was named but is
        missing, or one that is invalid, is still an error.
        """
        if self.config_path is None and not Path(DEFAULT_CONFIG_PATH).exists():
            click.echo(f"no {DEFAULT_CONFIG_PATH} here: using {defaults}", err=True)
            return None
        return self.load()

    def history(self) -> tuple[str, str | None]:
        """Store URL and service for commands that only read history.

        Flag (or SAFESHIP_STORE_URL) over the config's store over the default
        `.safeship/history.db`, so the demo's history (or a CI run's) can be read
        anywhere; the service filter comes from the config only if there is one.
        """
        if self.store_url:
            return self.store_url, None
        config = self.load_optional(f"the default history store {DEFAULT_STORE_PATH}")
        if config is None:
            return DEFAULT_STORE_URL, None
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
            # only the keys the file set: a default left unset stays a default
            {**settings.model_dump(exclude_unset=True), "url": url},
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
