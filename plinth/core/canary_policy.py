"""The canary policy: which checks judge a canary, their limits, and what a verdict does.

Plain settings with no statistics in them (the tests live in ``plinth.core.canary``), so
reading plinth.toml or a deployment, which every ``plinth`` command may do, never loads
scipy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from plinth.errors import CanaryPolicyError, Problem
from plinth.errors.config import CANARY_INVALID_SETTING, CANARY_UNKNOWN_SETTING

Action = Literal["auto", "rollback", "report"]
CHECKS: tuple[str, ...] = (
    "error_rate",
    "fallback_rate",
    "p95_latency",
    "output_distance",
    "performance",
)
ACTIONS: tuple[str, ...] = ("auto", "rollback", "report")
_SCORER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class CanaryPolicy:
    """The checks, their limits, the minimum evidence, and what to do with a verdict.

    ``action``: ``auto`` promotes on pass and rolls back on fail, ``rollback`` only rolls
    back (a person promotes), ``report`` never acts.
    """

    checks: tuple[str, ...] = CHECKS
    action: Action = "auto"
    min_requests: int = 200
    min_duration_s: float = 300.0
    alpha: float = 0.01
    max_error_rate_increase: float = 0.01
    max_fallback_rate_increase: float = 0.02
    max_p95_increase: float = 0.25
    p95_slack_ms: float = 10.0
    max_output_distance: float = 0.1
    min_labels: int = 50
    max_loss_increase: float = 0.05
    # ``module:function(predicted, expected) -> score in [0, 1]``: the performance check's
    # loss is 1 - score (e.g. the scorer ``plinth evaluate`` used); None: 0/1 or |error|.
    scorer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = list(self.checks)
        return out

    @classmethod
    def from_mapping(
        cls, doc: Mapping[str, Any], base: CanaryPolicy | None = None, where: str = "policy"
    ) -> CanaryPolicy:
        """``base`` with the keys of ``doc`` replaced; every bad key or value listed at once."""
        base = base or cls()
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        problems: list[Problem] = []
        for key, value in doc.items():
            if key not in known:
                problems.append(
                    Problem(CANARY_UNKNOWN_SETTING, f"unknown setting {key!r}", field=key)
                )
                continue
            try:
                changes[key] = _coerce(key, value)
            except (TypeError, ValueError) as exc:
                problems.append(Problem(CANARY_INVALID_SETTING, str(exc), field=key))
        if problems:
            raise CanaryPolicyError(
                f"Invalid canary policy in {where} ({len(problems)} problems).",
                problems=problems,
            )
        return _replace(base, changes)


def _replace(base: CanaryPolicy, changes: Mapping[str, Any]) -> CanaryPolicy:
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    values.update(changes)
    return CanaryPolicy(**values)


def _coerce(key: str, value: Any) -> Any:
    if key == "scorer":
        if value is None:
            return None
        if not isinstance(value, str) or not _SCORER.match(value):
            raise ValueError(f"scorer must be module:function, got {value!r}")
        return value
    if key == "checks":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError("checks must be a list of check names")
        unknown = [c for c in value if c not in CHECKS]
        if unknown:
            raise ValueError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
        return tuple(str(c) for c in value)
    if key == "action":
        if value not in ACTIONS:
            raise ValueError(f"action {value!r} is not one of {list(ACTIONS)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
    if key == "alpha" and not 0 < number < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {value!r}")
    if key in ("min_requests", "min_labels"):
        if number != int(number):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        return max(int(number), 1)
    return number
