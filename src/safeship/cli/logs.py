"""Log setup: JSON lines in CI or when SAFESHIP_LOG_FORMAT=json, plain text otherwise."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(verbose: bool = False) -> None:
    """Logs go to stderr so stdout stays clean for `--json` output."""
    handler = logging.StreamHandler(sys.stderr)
    wants_json = os.environ.get("SAFESHIP_LOG_FORMAT", "").lower() == "json" or bool(
        os.environ.get("CI")
    )
    if wants_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("safeship")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False
