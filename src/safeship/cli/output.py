"""Shared output helpers: JSON with a schema version, and durations for people."""

from __future__ import annotations

import json
import time
from typing import Any

import click

SCHEMA_VERSION = 1


def emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps({"schema_version": SCHEMA_VERSION, **data}, indent=2, default=str))


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}m"
