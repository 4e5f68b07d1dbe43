"""Files safeship generates and commits (rules, dashboards): write if changed, or check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from safeship.errors import ConfigError


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    text: str


def stale(files: tuple[GeneratedFile, ...]) -> list[Path]:
    """The files that are missing or differ from what would be generated."""
    out = []
    for file in files:
        try:
            current: str | None = file.path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None  # missing, or not what we write: stale either way
        except OSError as exc:
            raise ConfigError(f"{file.path}: cannot read: {exc.strerror or exc}") from exc
        if current != file.text:
            out.append(file.path)
    return out


def write(files: tuple[GeneratedFile, ...]) -> list[Path]:
    """Write the files whose content changed; returns those paths."""
    changed = stale(files)
    for file in files:
        if file.path in changed:
            try:
                file.path.parent.mkdir(parents=True, exist_ok=True)
                file.path.write_text(file.text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{file.path}: cannot write: {exc.strerror or exc} "
                    "(does its folder exist, and may you write there?)"
                ) from exc
    return changed


def write_or_check(
    files: tuple[GeneratedFile, ...], *, check: bool, command: str, what: str
) -> bool:
    """The CLI side of `generate [--check]`: report per file; False when `check` finds stale."""
    if check:
        outdated = stale(files)
        for path in outdated:
            click.echo(f"stale: {path} (run `{command}`)", err=True)
        if not outdated:
            click.echo(f"generated {what} are up to date")
        return not outdated
    changed = write(files)
    for file in files:
        click.echo(f"{'wrote' if file.path in changed else 'unchanged'}: {file.path}")
    return True
