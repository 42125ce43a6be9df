"""Plinth: everything a trained model stands on in production.

Register a model with its training data (``plinth.register``), serve it behind an input
contract (``plinth serve``), log every prediction durably and replay any of them exactly.
The names below are imported on first use, so ``import plinth`` (and the ``plinth`` command)
starts without loading pandas or scikit-learn (nor reading the package metadata for
``__version__``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.api import open_registry, register
    from plinth.client import AsyncClient, Client
    from plinth.config.settings import Settings
    from plinth.errors import PlinthError, Problem
    from plinth.runtime import Runtime
    from plinth.version import __version__


_EXPORTS = {
    "AsyncClient": "plinth.client",
    "Client": "plinth.client",
    "PlinthError": "plinth.errors",
    "Problem": "plinth.errors",
    "Runtime": "plinth.runtime",
    "Settings": "plinth.config.settings",
    "__version__": "plinth.version",
    "open_registry": "plinth.api",
    "register": "plinth.api",
}

__all__ = [
    "AsyncClient",
    "Client",
    "PlinthError",
    "Problem",
    "Runtime",
    "Settings",
    "__version__",
    "open_registry",
    "register",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
