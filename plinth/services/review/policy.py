"""Which answers each model sends to review: the gate's policy per model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.config import read_plinth_toml
from plinth.core.review import ReviewPolicy
from plinth.settings import Settings

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------- the policy


def policy_source(settings: Settings) -> Callable[[str], ReviewPolicy | None]:
    """Where each model's gate comes from: ``[models.NAME]`` in plinth.toml
    (``review_below = 0.7``, optionally ``review_measure = "margin"``; regressors
    ``review_above = 2.5`` with ``review_measure = "tree_spread"`` or ``"ood"``), else
    ``PLINTH_REVIEW_BELOW`` for every classifier. Read once per call site."""
    per_model = _toml_models(settings.monitoring_file)
    default = settings.review_below

    def policy(name: str) -> ReviewPolicy | None:
        section = per_model.get(name, {})
        measure = section.get("review_measure", settings.review_measure)
        if "review_above" in section:
            return ReviewPolicy(float(section["review_above"]), measure)
        if "review_below" in section:
            return ReviewPolicy(float(section["review_below"]), measure)
        return None if default is None else ReviewPolicy(float(default), measure)

    return policy


def _toml_models(path: Path) -> dict[str, dict[str, Any]]:
    models = read_plinth_toml(path).get("models", {})
    return {k: v for k, v in models.items() if isinstance(v, dict)}
