"""Configuration, in one place: process settings from ``PLINTH_*`` and policies from plinth.toml.

``Settings`` (``settings.py``) is built once at the edge from the environment; ``Policies``
(``policies.py``) is read from ``plinth.toml`` once at start-up, every problem listed at
once. Services receive plain values and policy objects from the Runtime and never read the
environment or a file themselves.
"""

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
