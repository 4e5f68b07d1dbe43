"""GitHub Actions workflow commands, step outputs and the step summary.

Everything here writes only inside a workflow run (`GITHUB_ACTIONS=true`), so
the same command behaves exactly as before on a laptop. Text that reaches the
runner is escaped the way the runner unescapes it: otherwise a `%0A` or a
newline in a message would end an annotation early, and a `:` or `,` in a
property would start another property.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A workflow command's message: `%` first, so the escapes themselves survive."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (`title=...`): also `:` and `,`, which end the value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(name: str, message: str = "", **properties: str) -> str:
    """One `::name key=value,...::message` line (properties with no value are left out)."""
    props = ",".join(
        f"{key}={escape_property(value)}" for key, value in properties.items() if value
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def set_output(name: str, value: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append `name=value` to `$GITHUB_OUTPUT`; False (nothing written) outside Actions.

    A multi-line value uses the heredoc form with a random delimiter, so a
    value can never end the block early and inject other outputs.
    """
    environ = os.environ if environ is None else environ
    path = environ.get("GITHUB_OUTPUT")
    if not in_github_actions(environ) or not path:
        return False
    with open(path, "a", encoding="utf-8") as out:
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            out.write(f"{name}={value}\n")
    return True


def append_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append markdown to `$GITHUB_STEP_SUMMARY`; False (nothing written) outside Actions."""
    environ = os.environ if environ is None else environ
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not in_github_actions(environ) or not path:
        return False
    with open(path, "a", encoding="utf-8") as out:
        out.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True
