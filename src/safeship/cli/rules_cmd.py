"""`safeship rules`: generate, test and lint the alerting rules."""

from __future__ import annotations

import click


@click.group()
def rules() -> None:
    """Alerting rules as code: generate, unit-test with promtool, lint."""
