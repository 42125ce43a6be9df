"""The review gate: which predictions a person should check before anyone relies on them.

In high-stakes work the model should act alone only when it is sure. A ``ReviewPolicy``
turns one per-row measure into a yes/no:

- ``top_probability`` (classifiers): review when the top class probability is below the
  threshold;
- ``margin`` (classifiers): review when top minus second probability is below it, which
  also catches a three-way tie that a 0.45 top probability would let through at 0.4;
- ``tree_spread`` (forest regressors): review when the standard deviation of the trees'
  predictions is above it (in the target's units);
- ``ood`` (any regressor, any model): review when the input's out-of-distribution score,
  the percentile of its mean distance to the ``k`` nearest training rows among the training
  rows' own, is above it (e.g. 0.99: stranger than 99 % of the training rows).

A row whose measure is missing or not finite is always reviewed: when in doubt, ask.

The policy is apart from the out-of-distribution score and the review-share estimate
(``plinth.core.review``, which need pandas and scipy), so reading plinth.toml or a
deployment never loads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from plinth.core.output import confidence, margin
from plinth.errors import InvalidGateInputError, InvalidReviewPolicyError, MissingGateInputError

Measure = Literal["top_probability", "margin", "tree_spread", "ood"]

_MEASURES = get_args(Measure)
#: Measures where a small value means unsure (review below); the others review above.
_REVIEW_BELOW = frozenset({"top_probability", "margin"})


@dataclass(frozen=True)
class ReviewPolicy:
    """When a prediction goes to a person; stored as JSON in the deployment.

    >>> policy = ReviewPolicy(0.8)
    >>> policy.needs_review(np.array([[0.9, 0.1], [0.3, 0.7], [np.nan, np.nan]])).tolist()
    [False, True, True]
    >>> ReviewPolicy(0.5, "tree_spread").needs_review(uncertainty=np.array([0.2, 1.5])).tolist()
    [False, True]
    """

    threshold: float
    measure: Measure = "top_probability"

    def __post_init__(self) -> None:
        if self.measure not in _MEASURES:
            raise InvalidReviewPolicyError(
                f"Review measure {self.measure!r} is not one of {', '.join(_MEASURES)}."
            )
        t = self.threshold
        ok = isinstance(t, int | float) and math.isfinite(t)
        if ok and self.measure in ("top_probability", "margin", "ood"):
            ok = 0.0 <= t <= 1.0
        elif ok:
            ok = t >= 0.0
        if not ok:
            bounds = "a number >= 0" if self.measure == "tree_spread" else "between 0 and 1"
            raise InvalidReviewPolicyError(
                f"Review threshold {t!r} for {self.measure} must be {bounds}.",
                hint="For example --review-below 0.7 for top_probability.",
            )

    @property
    def review_below(self) -> bool:
        """True when small values of the measure mean unsure (probabilities, margins)."""
        return self.measure in _REVIEW_BELOW

    def scores(
        self,
        probabilities: Any = None,
        predictions: Any = None,
        uncertainty: Any = None,
    ) -> np.ndarray:
        """The per-row measure the policy gates on (NaN where it cannot be computed)."""
        if self.measure in _REVIEW_BELOW:
            if probabilities is None:
                raise MissingGateInputError(
                    f"The {self.measure} gate needs the class probabilities.",
                    hint="Pass probabilities=, or gate a regressor on tree_spread or ood.",
                )
            p = np.asarray(probabilities, dtype=np.float64)
            return confidence(p) if self.measure == "top_probability" else margin(p)
        if uncertainty is not None:
            return np.asarray(uncertainty, dtype=np.float64).reshape(-1)
        if self.measure == "tree_spread" and predictions is not None:
            per_tree = np.asarray(predictions, dtype=np.float64)
            if per_tree.ndim == 2:
                return tree_spread(per_tree)
        raise MissingGateInputError(
            f"The {self.measure} gate needs an uncertainty per row.",
            hint="Pass uncertainty= (tree_spread(...) or OutOfDistribution.score(...)), or the "
            "per-tree predictions as a (rows, trees) array for tree_spread.",
        )

    def needs_review(
        self,
        probabilities: Any = None,
        predictions: Any = None,
        uncertainty: Any = None,
    ) -> np.ndarray:
        """One bool per row: True when a person should check this prediction.

        ``probabilities`` (rows, classes) for top_probability and margin; ``uncertainty``
        (one value per row) for tree_spread and ood, or, for tree_spread, ``predictions``
        as the per-tree (rows, trees) array. Non-finite measures are always reviewed.
        """
        score = self.scores(probabilities, predictions, uncertainty)
        unknown = ~np.isfinite(score)
        with np.errstate(invalid="ignore"):
            unsure = score < self.threshold if self.review_below else score > self.threshold
        return np.asarray(unsure | unknown, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": float(self.threshold), "measure": self.measure}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReviewPolicy:
        return cls(
            threshold=float(data["threshold"]),
            measure=data.get("measure", "top_probability"),
        )


def tree_spread(per_tree_predictions: Any) -> np.ndarray:
    """Standard deviation across a forest's trees, per row: where the trees disagree, the
    forest's average is shaky. ``per_tree_predictions`` is (rows, trees), e.g.
    ``np.column_stack([t.predict(X) for t in forest.estimators_])``.

    >>> tree_spread(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])).round(4).tolist()
    [0.0, 0.8165]
    """
    values = np.asarray(per_tree_predictions, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise InvalidGateInputError(
            f"Per-tree predictions must be a (rows, trees) array, got shape {values.shape}.",
            hint="Stack each tree's predictions as one column.",
        )
    return np.asarray(values.std(axis=1))
