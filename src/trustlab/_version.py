"""The installed trustlab version (from package metadata, so there is one source of truth)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trustlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
