"""Plinth: everything a trained model stands on in production.

Register a model with its training data (``plinth.register``), serve it behind an input
contract (``plinth serve``), log every prediction durably and replay any of them exactly.
"""

from plinth.api import open_registry, register
from plinth.client import Client
from plinth.errors import PlinthError, Problem
from plinth.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Client",
    "PlinthError",
    "Problem",
    "Settings",
    "__version__",
    "open_registry",
    "register",
]
