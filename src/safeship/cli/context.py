"""What every subcommand may need from the root command: where the config is."""

from __future__ import annotations

from dataclasses import dataclass

import click

from safeship.config import Config, load_config


@dataclass
class Context:
    config_path: str | None

    def load(self) -> Config:
        return load_config(self.config_path)


pass_context = click.make_pass_decorator(Context)
