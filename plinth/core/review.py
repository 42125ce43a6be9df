"""How strange an input is, and how much traffic a review gate will send to people.

``OutOfDistribution`` gives the ``ood`` measure of ``plinth.core.review_policy.ReviewPolicy``:
the percentile of an input's mean distance to its nearest training rows among the training
rows' own. ``expected_review_share`` predicts a gate's share of traffic from the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import stats

from plinth.core.neighbours import NeighbourIndex
from plinth.errors import (
    InvalidGateInputError,
    NotFittedError,
)


class OutOfDistribution:
    """How unlike the training data an input is, as a percentile of the training rows' own
    strangeness: model-agnostic regression uncertainty, since a model is least reliable
    where it saw no data.

    The raw score is the mean Gower-like distance (``plinth.core.neighbours``) to the ``k``
    nearest rows of a training sample; each training row is scored the same way against the
    others (leave-one-out), and an input's score is the share of training rows whose raw
    score is at most its own. 0.5 is typical, 1.0 is beyond every training row.

    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"x": rng.normal(0, 1, 300), "y": rng.normal(0, 1, 300)})
    >>> ood = OutOfDistribution(k=5).fit(train, {"x": "numeric", "y": "numeric"})
    >>> ood.score(pd.DataFrame({"x": [0.0, 0.5, 6.0], "y": [0.0, -1.5, 6.0]})).tolist()
    [0.27, 0.62, 1.0]
    """

    index_: NeighbourIndex
    reference_: np.ndarray  # sorted leave-one-out raw scores of the training sample

    def __init__(self, k: int = 5, max_rows: int = 2000, seed: int = 0) -> None:
        self.k = k
        self.max_rows = max_rows
        self.seed = seed

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> Self:
        """Index a seeded sample of ``frame`` and score each sampled row against the rest."""
        self._check_k()
        return self.fit_index(
            NeighbourIndex(max_rows=self.max_rows, seed=self.seed).fit(frame, kinds)
        )

    def fit_index(self, index: NeighbourIndex) -> Self:
        """Score the rows of an already fitted index (its training sample) against each
        other, so the review context's neighbour index doubles as the OOD reference and
        registration stores one sample, not two. The index is used, not copied: do not
        ``add`` to it afterwards."""
        self._check_k()
        n = index.n_rows_
        if n < 2:
            raise InvalidGateInputError(
                "Need at least two training rows to score strangeness.",
                hint="Fit on the training table.",
            )
        if bool(np.any(index.added_)):
            raise InvalidGateInputError(
                "The index holds added cases (resolved reviews), not only training rows.",
                hint="Fit the reference on a freshly fitted index.",
            )
        own = index.stored_distances()
        np.fill_diagonal(own, np.inf)  # leave one out: a row is not its own neighbour
        self.max_rows, self.seed = index.max_rows, index.seed  # describe the sample used
        self.index_ = index
        self.reference_ = np.sort(_mean_k_smallest(own, min(self.k, n - 1)))
        return self

    def _check_k(self) -> None:
        if self.k < 1:
            raise InvalidGateInputError(
                f"k={self.k} must be >= 1.",
                hint="Use k=5.",
            )

    def raw_score(self, rows: pd.DataFrame) -> np.ndarray:
        """Mean distance to the ``k`` nearest training rows (in robust-IQR units)."""
        if not hasattr(self, "reference_"):
            raise NotFittedError(
                "This OutOfDistribution scorer is not fitted.",
                hint="Call OutOfDistribution(...).fit(frame, kinds) or from_dict(...) first.",
            )
        return _mean_k_smallest(self.index_.distances(rows), min(self.k, self.index_.n_rows_))

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """Percentile of each row's raw score among the training rows', in [0, 1]."""
        raw = self.raw_score(rows)
        return np.searchsorted(self.reference_, raw, side="right") / self.reference_.size

    def to_dict(self, *, with_index: bool = True) -> dict[str, Any]:
        """JSON-ready; ``with_index=False`` leaves the index out when it is stored
        elsewhere (registration keeps it once, as the review context's neighbour index)."""
        if not hasattr(self, "reference_"):
            self.raw_score(pd.DataFrame())  # raises core.not_fitted
        document: dict[str, Any] = {
            "k": self.k,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "reference": self.reference_.tolist(),
        }
        if with_index:
            document["index"] = self.index_.to_dict()
        return document

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], index: NeighbourIndex | None = None
    ) -> OutOfDistribution:
        """The scorer back from ``to_dict``; pass ``index`` when it was stored apart."""
        scorer = cls(k=int(data["k"]), max_rows=int(data["max_rows"]), seed=int(data["seed"]))
        if index is None:
            if "index" not in data:
                raise InvalidGateInputError(
                    "This OOD document was stored without its neighbour index.",
                    hint="Pass the index it was fitted on: "
                    "OutOfDistribution.from_dict(doc, index).",
                )
            index = NeighbourIndex.from_dict(data["index"])
        scorer.index_ = index
        scorer.reference_ = np.asarray(data["reference"], dtype=np.float64)
        return scorer


def _mean_k_smallest(distances: np.ndarray, k: int) -> np.ndarray:
    if distances.shape[0] == 0:
        return np.zeros(0)
    smallest = np.partition(distances, k - 1, axis=1)[:, :k]
    return np.asarray(smallest.mean(axis=1))


@dataclass(frozen=True)
class ReviewShare:
    """The share of traffic a gate should send to review, with a binomial interval."""

    share: float
    lower: float
    upper: float
    n_holdout: int
    window: int | None

    def contains(self, observed: float) -> bool:
        return self.lower <= observed <= self.upper

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "lower": self.lower,
            "upper": self.upper,
            "n_holdout": self.n_holdout,
            "window": self.window,
        }


def expected_review_share(
    holdout_confidences: Any,
    threshold: float,
    *,
    window: int | None = None,
    level: float = 0.95,
    review_below: bool = True,
) -> ReviewShare:
    """How much traffic a gate will route to people, predicted from the holdout, so a
    team can size the review queue before turning the gate on, and notice when the live
    share leaves the interval (the inputs or the model's confidence have moved).

    The share is the holdout's share under ``threshold`` (above it with
    ``review_below=False``, for uncertainty measures). The interval is binomial with the
    holdout's own uncertainty folded in: the true share gets Jeffreys' posterior
    Beta(k + 1/2, n - k + 1/2) from k of n holdout rows flagged; with ``window`` rows the
    interval holds the central ``level`` of the beta-binomial count of flagged rows in the
    window, divided by ``window`` (discrete, so coverage is at least about ``level``);
    without ``window`` it is the Jeffreys interval of the share itself.

    >>> rng = np.random.default_rng(0)
    >>> s = expected_review_share(rng.beta(5, 1, 500), 0.8, window=200)
    >>> round(s.share, 4), round(s.lower, 4), round(s.upper, 4)
    (0.318, 0.245, 0.395)
    """
    scores = np.asarray(holdout_confidences, dtype=np.float64).reshape(-1)
    n = scores.size
    if n == 0 or not 0.0 < level < 1.0 or (window is not None and window < 1):
        raise InvalidGateInputError(
            f"Need holdout scores (got {n}), 0 < level < 1 (got {level}) and a window of at "
            f"least one row (got {window}).",
            hint="Pass the holdout's top probabilities and the live window's size.",
        )
    with np.errstate(invalid="ignore"):
        flagged = scores < threshold if review_below else scores > threshold
    flagged |= ~np.isfinite(scores)  # the gate reviews non-finite measures, so count them
    share = float(flagged.mean())
    hits = float(flagged.sum())
    a, b = hits + 0.5, n - hits + 0.5
    tail = (1 - level) / 2
    if window is None:
        lower, upper = (float(v) for v in stats.beta.ppf([tail, 1 - tail], a, b))
    else:
        counts = stats.betabinom.ppf([tail, 1 - tail], window, a, b)
        lower, upper = (float(v) / window for v in counts)
    return ReviewShare(share, lower, upper, n, window)
