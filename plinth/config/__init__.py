"""Configuration, in one place: process settings from ``PLINTH_*`` and policies from plinth.toml.

``Settings`` (``settings.py``) is built once at the edge from the environment; ``Policies``
(``policies.py``) is read from ``plinth.toml`` once at start-up, every problem listed at
once. Services receive plain values and policy objects from the Runtime and never read the
environment or a file themselves. The names below are imported on first use, so a command
that only needs ``Settings`` never builds the policy models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.config.policies import (
        AlertRules,
        BatchingPolicy,
        CanaryPolicies,
        MonitorPolicy,
        Policies,
        parse_policies,
        read_policies,
    )
    from plinth.config.settings import Settings

_EXPORTS = {
    "AlertRules": "plinth.config.policies",
    "BatchingPolicy": "plinth.config.policies",
    "CanaryPolicies": "plinth.config.policies",
    "MonitorPolicy": "plinth.config.policies",
    "Policies": "plinth.config.policies",
    "Settings": "plinth.config.settings",
    "parse_policies": "plinth.config.policies",
    "read_policies": "plinth.config.policies",
}

__all__ = [
    "AlertRules",
    "BatchingPolicy",
    "CanaryPolicies",
    "MonitorPolicy",
    "Policies",
    "Settings",
    "parse_policies",
    "read_policies",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth.config' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
