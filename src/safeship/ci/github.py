"""Step outputs for GitHub Actions (`$GITHUB_OUTPUT`), written only inside a workflow run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("GITHUB_ACTIONS") == "true"


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
