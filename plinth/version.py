"""The package's version, read from its installed metadata (pyproject.toml is the one source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plinth-ml")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
