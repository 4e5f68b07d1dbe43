"""What every subcommand may need from the root command: the config file and the store."""

from __future__ import annotations

from dataclasses import dataclass

import click

from safeship.config import Config, PushgatewaySettings, StoreSettings, load_config


@dataclass
class Context:
    config_path: str | None
    store_url: str | None = None
    pushgateway_url: str | None = None

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


pass_context = click.make_pass_decorator(Context)
