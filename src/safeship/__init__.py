"""safeship: progressive canary deployments that are safe to ship.

The library core has no UI: `safeship.cli` only wires these modules together.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("safeship")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
