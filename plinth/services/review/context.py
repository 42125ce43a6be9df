"""What a reviewer sees beside a case: a local attribution and the nearest precedents.

Computed after the reply, from what registration stored
(``plinth.services.registry.review_assets``): the nearest training rows and the nearest
resolved reviews.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plinth.core.attribution import shapley_sampling
from plinth.core.neighbours import NeighbourIndex
from plinth.store.feedback import FeedbackStore

if TYPE_CHECKING:
    from plinth.services.registry.versions import ServedModel


#: Attribution budget: model rows evaluated per review item, at most.
ATTRIBUTION_ROWS = 20_000
TOP_FEATURES = 10
NEIGHBOURS = 5
RESOLVED_PRECEDENT = 500


# ---------------------------------------------------------------------- context


@dataclass
class _Prepared:
    background: pd.DataFrame | None
    neighbours: NeighbourIndex | None


class ContextBuilder:
    """Attribution and precedent for one review item, from what registration stored."""

    def __init__(self, sql: FeedbackStore, *, seed: int = 0) -> None:
        self.sql = sql
        self.seed = seed
        self._prepared: dict[tuple[str, int], _Prepared] = {}

    def _prepare(self, model: ServedModel) -> _Prepared:
        key = (model.name, model.version)
        if key not in self._prepared:
            assets = model.review_assets()  # stored at registration, loaded once
            background = assets.background
            self._prepared[key] = _Prepared(
                None if not background else model.contract.frame(background),
                assets.neighbours,
            )
        return self._prepared[key]

    def build(
        self, model: ServedModel, features: dict[str, Any], output: dict[str, Any]
    ) -> dict[str, Any]:
        prepared = self._prepare(model)
        row = model.contract.frame([features])
        context: dict[str, Any] = {}
        if prepared.background is not None and len(prepared.background):
            context["attribution"] = self._attribution(model, row, prepared.background)
        if prepared.neighbours is not None:
            context["neighbours"] = self._neighbours(model, row, prepared.neighbours)
        return context

    def _attribution(
        self, model: ServedModel, row: pd.DataFrame, background: pd.DataFrame
    ) -> dict[str, Any]:
        classifier = model.output.task == "classification" and model.flavor.has_proba

        def predict(frame: pd.DataFrame) -> Any:
            if classifier:
                return model.flavor.predict_proba(frame)
            return np.asarray(model.flavor.predict(frame), dtype=float)

        d = max(2, row.shape[1])
        n_background = max(10, min(len(background), ATTRIBUTION_ROWS // (2 * (d - 1))))
        result = shapley_sampling(
            predict, row, background, n_background=n_background, seed=self.seed
        )
        classes = model.output.classes or []
        explained = (
            classes[result.target]
            if classifier and result.target is not None and result.target < len(classes)
            else None
        )
        return {
            **result.to_dict(),
            "explains": "probability of " + repr(explained) if classifier else "prediction",
            "top": [{"feature": f, "value": v} for f, v in result.ranked(TOP_FEATURES)],
        }

    def _neighbours(
        self, model: ServedModel, row: pd.DataFrame, base: NeighbourIndex
    ) -> dict[str, Any]:
        index = base
        training = index.query(row, k=NEIGHBOURS)[0]
        resolved = self.sql.resolved_cases(model.name, RESOLVED_PRECEDENT)
        reviews: list[dict[str, Any]] = []
        if resolved:
            index = base.copy()  # the cached training sample stays as registered
            frame = model.contract.frame([features for _, features, _ in resolved])
            index.add(frame, [label for _, _, label in resolved], ids=[i for i, _, _ in resolved])
            added = {i for i, _, _ in resolved}
            everything = index.query(row, k=index.n_rows_)[0]
            reviews = [
                {"review_id": n.index, "distance": n.distance, "label": n.label}
                for n in everything
                if n.index in added
            ][:NEIGHBOURS]
        return {
            "training": [
                {
                    "row": n.index,
                    "distance": n.distance,
                    "label": n.label,
                    **_values(base, n.index),
                }
                for n in training
            ],
            "reviews": reviews,
            "distance": "mean per-feature Gower distance (numeric: |x - y| / IQR)",
        }


def _values(index: NeighbourIndex, row_id: Any) -> dict[str, Any]:
    """The stored row's feature values, undoing the index's scaling and encoding."""
    try:
        at = index.ids_.index(row_id)
    except ValueError:
        return {}
    values: dict[str, Any] = {}
    for j, column in enumerate(index.numeric_columns_):
        raw = index.numeric_[at, j]
        values[column] = None if np.isnan(raw) else float(raw * index.scale_[j] + index.center_[j])
    for j, column in enumerate(index.categorical_columns_):
        code = int(index.codes_[at, j])
        values[column] = index.vocabulary_[j][code] if code >= 0 else None
    return {"features": values}
