"""shop: an e-commerce order API (see README.md and docs/api.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shop")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
