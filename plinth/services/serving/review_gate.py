"""The review gate on the request path: which answers of a batch go to a person.

Called by scoring once per batch, vectorised. It marks answers whose measure is on the wrong
side of the version's policy; the reply still carries the prediction, plus
``"review": {"id": ..., "status": "pending"}``. It never fails a reply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from plinth.core.ids import new_id
from plinth.core.review_policy import ReviewPolicy, tree_spread
from plinth.errors import PlinthError
from plinth.store.feedback import ReviewRow

if TYPE_CHECKING:
    from plinth.services.registry.versions import ServedModel

log = logging.getLogger("plinth.review")


class ReviewSink(Protocol):
    """Where gated answers go (the review writer): ``submit`` resolves once the items are
    stored, so the reply can carry an id that exists."""

    def submit(self, drafts: Sequence[ReviewDraft]) -> Future[None]: ...


@dataclass
class ReviewDraft:
    """A review item made on the scoring thread, with what its context needs."""

    row: ReviewRow
    model: ServedModel
    features: dict[str, Any]
    output: dict[str, Any]


def draft(
    model: ServedModel, prediction_id: str, ts: datetime, score: float, output: dict[str, Any]
) -> ReviewDraft:
    """A review item for one gated answer (features are attached by the caller)."""
    policy = model.review
    assert policy is not None
    row = ReviewRow(
        id=new_id(),
        prediction_id=prediction_id,
        model=model.name,
        version=model.version,
        created_at=ts,
        measure=policy.measure,
        threshold=float(policy.threshold),
        score=score if math.isfinite(score) else None,
    )
    return ReviewDraft(row, model, {}, output)


def gate(
    model: ServedModel,
    frame: pd.DataFrame,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(needs review, measure) per row of one batch, or None when the version has no gate
    or the measure cannot be computed for it (never raised: a known reason, such as a
    version without an OOD reference, is logged once per version; a bug once per batch)."""
    policy = model.review
    if policy is None:
        return None
    try:
        if policy.review_below:
            if probabilities is None:
                return None
            scores = policy.scores(probabilities=probabilities)
            return policy.needs_review(probabilities=probabilities), scores
        scores = _uncertainty(model, policy, frame)
        return policy.needs_review(uncertainty=scores), scores
    except PlinthError as exc:  # e.g. review.no_ood_reference: the same every batch
        if exc.code not in model.gate_refusals:
            model.gate_refusals.add(exc.code)
            log.error("review gate off for %s:%s: %s", model.name, model.version, exc)
        return None
    except Exception:  # the gate must never fail a reply
        log.exception("review gate failed for %s:%s", model.name, model.version)
        return None


def _uncertainty(model: ServedModel, policy: ReviewPolicy, frame: pd.DataFrame) -> np.ndarray:
    if policy.measure == "tree_spread":
        estimator = model.flavor.model
        inputs: Any = frame
        steps = getattr(estimator, "steps", None)
        if steps:  # a pipeline: transform with every step but the last
            for _, step in steps[:-1]:
                inputs = step.transform(inputs)
            estimator = steps[-1][1]
        trees = getattr(estimator, "estimators_", None)
        if trees is None:
            raise ValueError("tree_spread needs a forest (an estimator with estimators_)")
        values = np.asarray(inputs.to_numpy() if hasattr(inputs, "to_numpy") else inputs)
        flat = [t for t in np.ravel(np.asarray(trees, dtype=object))]
        return tree_spread(np.column_stack([t.predict(values) for t in flat]))
    # ood: the reference fitted at registration, loaded once per worker with the version.
    return np.asarray(
        model.review_assets().ood_scorer(f"{model.name}:{model.version}").score(frame)
    )
