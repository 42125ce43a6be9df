"""Estimated performance before labels arrive (confidence-based performance estimation).

Labels often come days after the predictions, yet a team wants to know today whether the
model still performs. If the model's probabilities are *calibrated* — among rows given 0.8,
80 % are right — then the expected accuracy of a window is the mean probability of the
predicted class, and the expected confusion matrix follows from the probabilities alone.
Raw model probabilities are rarely calibrated (forests are shy of 0 and 1, boosted trees
overconfident), so at registration a ``ProbabilityCalibrator`` is fitted on the holdout and
stored with the version; ``PerformanceEstimator`` then turns any window of predicted
probabilities into estimates with a confidence band.

When it is NOT valid (see docs/performance.md): under concept drift (P(y|x) changes: the
same inputs now mean another outcome) the probabilities are confidently wrong and the
estimate stays high while realised accuracy falls; under a calibration shift (the model is
asked about a region it never saw, where its confidence means something else) the
estimate is biased. It detects covariate shift's effect on performance, not concept drift;
compare it with realised performance as labels arrive, and distrust it when they disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, get_args

import numpy as np
from scipy import stats

from plinth.errors import (
    EstimationUnknownLabelError,
    InvalidEstimationInputError,
    NotFittedError,
    PlinthError,
)

Method = Literal["isotonic", "histogram"]

_METHODS = get_args(Method)
FORMAT_VERSION = 1
# Bound the simulation block (draws x rows, x classes beyond two) to about 2 MB per array;
# larger windows simulate in chunks. The live-performance gauges estimate a window of up to
# 50,000 rows every minute in every worker: blocks of 2,000,000 cells (16 MB per array,
# ~80 MB of temporaries at once) were freed into malloc arenas that kept them resident.
_SIMULATION_CELLS = 250_000


def _not_fitted(what: str) -> PlinthError:
    return NotFittedError(
        f"This {what} is not fitted.",
        hint=f"Call {what}(...).fit(probabilities, labels, classes) or from_dict(...) first.",
    )


def pool_adjacent_violators(y: Any, weights: Any = None) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares: isotonic
    regression, the calibration map that assumes only that a higher score never means a
    lower chance. Input already sorted by score.

    >>> pool_adjacent_violators([0, 1, 0, 1, 1, 0, 1]).round(4).tolist()
    [0.0, 0.5, 0.5, 0.6667, 0.6667, 0.6667, 1.0]
    """
    values = np.asarray(y, dtype=np.float64).reshape(-1)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    # A stack of blocks (mean, weight, length); merge while the last two violate the order.
    means: list[float] = []
    mass: list[float] = []
    sizes: list[int] = []
    for v, wi in zip(values.tolist(), w.tolist(), strict=True):
        means.append(v)
        mass.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = mass[-2] + mass[-1]
            means[-2] = (means[-2] * mass[-2] + means[-1] * mass[-1]) / total
            mass[-2] = total
            sizes[-2] += sizes[-1]
            means.pop()
            mass.pop()
            sizes.pop()
    return np.repeat(np.asarray(means), sizes)


@dataclass(frozen=True)
class CalibrationMap:
    """One class's calibration map as blocks: holdout rows and positives per block.

    Isotonic: ``x`` holds the first and last holdout score of each constant block and
    scores in between are interpolated linearly (clipped outside the holdout's range).
    Histogram: ``x`` holds the ``n_bins + 1`` bin edges and each bin is one block. Keeping
    the counts, not just the rates, is what lets the estimator say how sure the map is.
    """

    kind: Method
    x: list[float]
    block: list[int]  # isotonic: the block of each knot; histogram: unused (bin = block)
    rows: list[int]
    hits: list[float]

    def _prior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, hits and a Beta prior mean per block (prior weight: one row).

        Isotonic blocks take Jeffreys' prior (mean 1/2); a histogram bin takes its centre,
        i.e. it trusts the model's own probability until the holdout says otherwise."""
        rows, hits = np.asarray(self.rows, dtype=np.float64), np.asarray(self.hits)
        if self.kind == "isotonic":
            return rows, hits, np.full(rows.size, 0.5)
        return rows, hits, (np.arange(rows.size) + 0.5) / max(rows.size, 1)

    def rates(self) -> np.ndarray:
        """Outcome rate per block: the posterior mean (hits + prior) / (rows + 1), so a
        block of 100 right out of 100 says about 0.995, not a certainty; isotonic blocks
        are pooled again if the shrinkage broke their order."""
        rows, hits, prior = self._prior()
        rates = (hits + prior) / (rows + 1)
        if self.kind == "isotonic":
            return pool_adjacent_violators(rates, rows + 1)
        return np.asarray(rates)

    def sample_rates(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """(draws, blocks) plausible rates, each block's from its posterior
        Beta(hits + prior, misses + 1 - prior): a block of 100 hits out of 100 may still
        be wrong 1 % of the time, which is what a live window then shows."""
        rows, hits, prior = self._prior()
        return rng.beta(hits + prior, rows - hits + 1 - prior, size=(draws, rows.size))

    def locate(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per score: the blocks on its left and right and the interpolation weight, computed
        once and shared by every draw of the rates."""
        if self.kind == "histogram":
            bins = len(self.x) - 1
            which = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
            return which, which, np.zeros(scores.size)
        x, block = np.asarray(self.x), np.asarray(self.block)
        if x.size == 1:  # every holdout score was the same: a constant map
            zero = np.zeros(scores.size, dtype=np.int64)
            return zero, zero, np.zeros(scores.size)
        # linear between knots, clipped to the end values outside the holdout's range
        right = np.clip(np.searchsorted(x, scores, side="right"), 1, x.size - 1)
        left = right - 1
        weight = np.clip((scores - x[left]) / (x[right] - x[left]), 0.0, 1.0)  # distinct knots
        return block[left], block[right], weight

    @staticmethod
    def blend(located: tuple[np.ndarray, np.ndarray, np.ndarray], rates: np.ndarray) -> np.ndarray:
        """Calibrated scores from located scores and rates per block (or (draws, blocks))."""
        left, right, weight = located
        return np.asarray(rates[..., left] * (1 - weight) + rates[..., right] * weight)

    def apply(self, scores: np.ndarray, rates: np.ndarray | None = None) -> np.ndarray:
        """Calibrated scores; with ``rates`` (draws, blocks), one row per draw."""
        return self.blend(self.locate(scores), self.rates() if rates is None else rates)

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "block": self.block, "rows": self.rows, "hits": self.hits}

    @classmethod
    def from_dict(cls, kind: Method, data: Mapping[str, Any]) -> CalibrationMap:
        return cls(
            kind=kind,
            x=[float(v) for v in data["x"]],
            block=[int(v) for v in data["block"]],
            rows=[int(v) for v in data["rows"]],
            hits=[float(v) for v in data["hits"]],
        )


def _isotonic_map(scores: np.ndarray, outcomes: np.ndarray) -> CalibrationMap:
    unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # tied scores must get one value: pool them first, weighted by how many there are
    hits = np.bincount(inverse, weights=outcomes)
    fitted = pool_adjacent_violators(hits / counts, counts)
    # blocks are the runs of equal fitted values; keep the first and last score of each,
    # np.interp fills in between
    new_block = np.concatenate([[True], np.diff(fitted) != 0])
    block_of = np.cumsum(new_block) - 1
    rows = np.bincount(block_of, weights=counts).astype(np.int64)
    block_hits = np.bincount(block_of, weights=hits)
    ends = np.concatenate([np.flatnonzero(new_block), [unique.size]])
    keep = np.unique(np.concatenate([ends[:-1], ends[1:] - 1]))
    return CalibrationMap(
        kind="isotonic",
        x=unique[keep].tolist(),
        block=block_of[keep].tolist(),
        rows=rows.tolist(),
        hits=block_hits.tolist(),
    )


def _histogram_map(scores: np.ndarray, outcomes: np.ndarray, n_bins: int) -> CalibrationMap:
    which = np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)
    return CalibrationMap(
        kind="histogram",
        x=np.linspace(0.0, 1.0, n_bins + 1).tolist(),
        block=[],
        rows=np.bincount(which, minlength=n_bins).tolist(),
        hits=np.bincount(which, weights=outcomes, minlength=n_bins).tolist(),
    )


class ProbabilityCalibrator:
    """Maps a model's probabilities to calibrated ones, learned on the holdout.

    Binary: the positive class (``classes[1]``) is calibrated and the other is its
    complement. Multiclass: each class one-vs-rest, then each row renormalised to sum to 1.

    >>> rng = np.random.default_rng(0)
    >>> raw = rng.uniform(0, 1, 1000)
    >>> y = (rng.uniform(0, 1, 1000) < raw**2).astype(int)  # true chance raw**2: overconfident
    >>> cal = ProbabilityCalibrator().fit(np.column_stack([1 - raw, raw]), y, [0, 1])
    >>> cal.transform(np.array([[0.5, 0.5], [0.1, 0.9]]))[:, 1].round(4).tolist()
    [0.212, 0.8167]
    """

    maps_: list[CalibrationMap]  # one per calibrated column
    classes_: list[Any]

    def __init__(self, method: Method = "isotonic", n_bins: int = 10) -> None:
        self.method = method
        self.n_bins = n_bins

    def fit(self, probabilities: Any, y_true: Any, classes: Sequence[Any]) -> Self:
        """Learn one calibration map per class column from the holdout predictions."""
        if self.method not in _METHODS or self.n_bins < 1:
            raise InvalidEstimationInputError(
                f"Calibration method {self.method!r} with n_bins={self.n_bins} is not valid.",
                hint=f"Use one of {', '.join(_METHODS)} and n_bins >= 1.",
            )
        classes = list(classes)
        if len(classes) < 2:
            raise InvalidEstimationInputError(
                f"Calibration needs at least two classes, got {classes}.",
                hint="Pass the model's classes in the order of its probability columns.",
            )
        p = _probabilities(probabilities, len(classes))
        truth = _label_indices(y_true, classes)
        if truth.size != p.shape[0] or truth.size == 0:
            raise InvalidEstimationInputError(
                f"Need one label per probability row (got {truth.size} and {p.shape[0]}).",
                hint="Calibrate on the holdout's labels and predicted probabilities.",
            )
        columns = [1] if len(classes) == 2 else list(range(len(classes)))
        self.maps_ = []
        for j in columns:
            outcome = (truth == j).astype(np.float64)
            if self.method == "isotonic":
                self.maps_.append(_isotonic_map(p[:, j], outcome))
            else:
                self.maps_.append(_histogram_map(p[:, j], outcome, self.n_bins))
        self.classes_ = classes
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "maps_"):
            raise _not_fitted("ProbabilityCalibrator")

    def transform(self, probabilities: Any) -> np.ndarray:
        """Calibrated probabilities, same shape; rows still sum to 1."""
        self._check_fitted()
        p = _probabilities(probabilities, len(self.classes_))
        return self._combine(
            p, [m.apply(p[:, j + (len(self.maps_) == 1)]) for j, m in enumerate(self.maps_)]
        )

    def sample(self, probabilities: Any, draws: int, rng: np.random.Generator) -> np.ndarray:
        """(draws, rows, classes) calibrated probabilities under plausible calibration maps
        (each block's rate drawn from its posterior): the calibrator's own uncertainty."""
        return self.sampler(probabilities)(draws, rng)

    def sampler(self, probabilities: Any) -> Callable[[int, np.random.Generator], np.ndarray]:
        """``sample`` for one window drawn block after block: its scores are checked and
        located once, not once per block."""
        self._check_fitted()
        p = _probabilities(probabilities, len(self.classes_))
        located = [m.locate(p[:, j + (len(self.maps_) == 1)]) for j, m in enumerate(self.maps_)]

        def draw(draws: int, rng: np.random.Generator) -> np.ndarray:
            mapped = [
                m.blend(where, m.sample_rates(rng, draws))
                for m, where in zip(self.maps_, located, strict=True)
            ]
            return self._combine(p[None, :, :], mapped)

        return draw

    def _combine(self, p: np.ndarray, mapped: list[np.ndarray]) -> np.ndarray:
        if len(self.classes_) == 2:
            positive = mapped[0]
            return np.stack([1 - positive, positive], axis=-1)
        q = np.stack(mapped, axis=-1)
        total = q.sum(axis=-1, keepdims=True)
        # a row every one-vs-rest map sent to 0 keeps the model's own probabilities
        return np.where(total > 0, q / np.where(total > 0, total, 1.0), p)

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "method": self.method,
            "n_bins": self.n_bins,
            "classes": list(self.classes_),
            "maps": [m.to_dict() for m in self.maps_],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbabilityCalibrator:
        cal = cls(method=data["method"], n_bins=int(data["n_bins"]))
        cal.classes_ = list(data["classes"])
        cal.maps_ = [CalibrationMap.from_dict(cal.method, m) for m in data["maps"]]
        return cal


@dataclass(frozen=True)
class Estimate:
    """One estimated metric with its band: where the realised value should fall."""

    value: float
    lower: float
    upper: float

    def contains(self, realised: float) -> bool:
        """Whether a realised metric agrees with the estimate (False hints at drift)."""
        return self.lower <= realised <= self.upper

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "lower": self.lower, "upper": self.upper}


class PerformanceEstimator:
    """Estimated accuracy (and, for binary models, precision, recall, F1 and ROC AUC) of a
    window of predictions, from their probabilities alone.

    Point estimates use the fitted calibration map: accuracy is the mean calibrated
    probability of the predicted class; binary metrics are ratios of expected confusion
    counts (expected TP = sum of calibrated P(positive) over rows predicted positive, ...);
    ROC AUC is the expected share of positive-negative pairs ranked right.

    Bands are for the realised metric of this window and carry two sources of error, each
    drawn ``n_simulations`` times with one seed: the calibration map itself (each block's
    rate from its Beta posterior, since a holdout of a few hundred rows pins it down only
    so far) and the window's labels (``y_i ~ Bernoulli(q_i)``). Accuracy uses a normal band
    whose variance adds the two (law of total variance: the spread of the mean over maps
    plus the mean Poisson-binomial variance ``sum c_i (1 - c_i) / n^2``); the other metrics
    take percentiles of the simulated metrics, scored like real labels.

    >>> rng = np.random.default_rng(0)
    >>> raw = rng.uniform(0, 1, 2000)
    >>> y = (rng.uniform(0, 1, 2000) < raw).astype(int)  # a calibrated model
    >>> est = PerformanceEstimator(seed=0).fit(np.column_stack([1 - raw, raw]), y, [0, 1])
    >>> window = rng.uniform(0, 1, 300)
    >>> result = est.estimate(np.column_stack([1 - window, window]))
    >>> {k: tuple(round(v, 3) for v in e.to_dict().values()) for k, e in result.items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'accuracy': (0.756, 0.707, 0.804), 'precision': (0.758, 0.688, 0.825),
     'recall': (0.764, 0.717, 0.825), 'f1': (0.761, 0.713, 0.813),
     'roc_auc': (0.844, 0.8, 0.886)}
    """

    calibrator_: ProbabilityCalibrator

    def __init__(
        self,
        method: Method = "isotonic",
        n_bins: int = 10,
        level: float = 0.95,
        n_simulations: int = 400,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.n_bins = n_bins
        self.level = level
        self.n_simulations = n_simulations
        self.seed = seed

    def fit(self, probabilities: Any, y_true: Any, classes: Sequence[Any]) -> Self:
        """Calibrate on the holdout (predicted probabilities and true labels)."""
        if not 0.0 < self.level < 1.0 or self.n_simulations < 10:
            raise InvalidEstimationInputError(
                f"level={self.level} must be in (0, 1) and n_simulations={self.n_simulations} "
                ">= 10.",
                hint="Use level=0.95 and n_simulations=400.",
            )
        self.calibrator_ = ProbabilityCalibrator(self.method, self.n_bins).fit(
            probabilities, y_true, classes
        )
        return self

    def estimate(self, probabilities: Any, predictions: Any = None) -> dict[str, Estimate]:
        """Estimates for one window; empty when the window is empty.

        ``predictions`` are the labels the model returned (default: the top class of
        ``probabilities``), so a model with its own decision threshold is scored as it acts.
        """
        if not hasattr(self, "calibrator_"):
            raise _not_fitted("PerformanceEstimator")
        classes = self.calibrator_.classes_
        p = _probabilities(probabilities, len(classes))
        n = p.shape[0]
        if n == 0:
            return {}
        predicted = (
            p.argmax(axis=1) if predictions is None else _label_indices(predictions, classes)
        )
        if predicted.size != n:
            raise InvalidEstimationInputError(
                f"Got {predicted.size} predictions for {n} probability rows.",
                hint="Pass one prediction per row, or none.",
            )
        rows = np.arange(n)
        q = self.calibrator_.transform(p)
        correct = q[rows, predicted]  # the chance each answer is right
        point = {"accuracy": float(correct.mean())}
        binary = len(classes) == 2
        if binary:
            point.update(_expected_binary(q[:, 1], p[:, 1], predicted == 1))

        rng = np.random.default_rng(self.seed)
        means, variances = [], []
        simulated: dict[str, list[np.ndarray]] = {}
        ranks = stats.rankdata(p[:, 1]) if binary else np.zeros(0)
        positive_map = self.calibrator_.maps_[0]
        located = positive_map.locate(p[:, 1])
        sample = None if binary else self.calibrator_.sampler(p)
        per_draw = n if binary else n * len(classes)
        chunk = max(1, min(self.n_simulations, _SIMULATION_CELLS // per_draw))
        for start in range(0, self.n_simulations, chunk):
            draws = min(chunk, self.n_simulations - start)
            if sample is None:  # binary: one calibrated column, no (draws, rows, classes) stack
                q1 = positive_map.blend(located, positive_map.sample_rates(rng, draws))
                c = np.where(predicted == 1, q1, 1 - q1)
            else:
                c = sample(draws, rng)[:, rows, predicted]
            means.append(c.mean(axis=1))
            variances.append((c * (1 - c)).sum(axis=1) / (n * n))
            if binary:
                labels = rng.random((draws, n)) < q1
                for name, values in _realised_binary(labels, predicted == 1, ranks).items():
                    simulated.setdefault(name, []).append(values)

        z = float(stats.norm.ppf(0.5 + self.level / 2))
        sd = float(np.sqrt(np.var(np.concatenate(means)) + np.mean(np.concatenate(variances))))
        acc = point["accuracy"]
        result = {"accuracy": _band(acc, acc - z * sd, acc + z * sd)}
        tail = 50 * (1 - self.level)
        for name, value in point.items():
            if name == "accuracy":
                continue
            values = np.concatenate(simulated[name])
            values = values[np.isfinite(values)]
            if values.size:
                low, high = np.percentile(values, [tail, 100 - tail])
                result[name] = _band(value, float(low), float(high))
        return result

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "calibrator_"):
            raise _not_fitted("PerformanceEstimator")
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "n_bins": self.n_bins,
            "level": self.level,
            "n_simulations": self.n_simulations,
            "seed": self.seed,
            "calibrator": self.calibrator_.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceEstimator:
        est = cls(
            method=data["method"],
            n_bins=int(data["n_bins"]),
            level=float(data["level"]),
            n_simulations=int(data["n_simulations"]),
            seed=int(data["seed"]),
        )
        est.calibrator_ = ProbabilityCalibrator.from_dict(data["calibrator"])
        return est


def _expected_binary(q: np.ndarray, score: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 from expected confusion counts; expected AUC if defined."""
    tp = float(q[positive].sum())
    fp = float((1 - q[positive]).sum())
    fn = float(q[~positive].sum())
    result = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }
    auc = _expected_auc(q, score)
    if auc is not None:
        result["roc_auc"] = auc
    return result


def _realised_binary(
    labels: np.ndarray, positive: np.ndarray, ranks: np.ndarray
) -> dict[str, np.ndarray]:
    """Metrics of simulated label sets (draws, rows), scored as real labels would be;
    AUC is NaN for a draw with one class only."""
    tp = (labels & positive[None, :]).sum(axis=1).astype(np.float64)
    predicted_pos = np.full_like(tp, float(positive.sum()))
    actual_pos = labels.sum(axis=1).astype(np.float64)
    actual_neg = labels.shape[1] - actual_pos
    u = labels.astype(np.float64) @ ranks - actual_pos * (actual_pos + 1) / 2
    pairs = actual_pos * actual_neg
    auc = np.divide(u, pairs, out=np.full_like(u, np.nan), where=pairs > 0)
    return {
        "precision": _ratios(tp, predicted_pos),
        "recall": _ratios(tp, actual_pos),
        "f1": _ratios(2 * tp, predicted_pos + actual_pos),
        "roc_auc": auc,
    }


def _band(value: float, lower: float, upper: float) -> Estimate:
    # clipped to [0, 1], and never excluding its own point estimate
    return Estimate(
        value=value,
        lower=max(0.0, min(lower, value)),
        upper=min(1.0, max(upper, value)),
    )


def _ratio(top: float, bottom: float) -> float:
    # a zero denominator counts as 0, as in plinth.core.metrics
    return top / bottom if bottom > 0 else 0.0


def _ratios(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.asarray(np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0))


def _expected_auc(q: np.ndarray, score: np.ndarray) -> float | None:
    """AUC with soft labels: expected positive-negative pairs ranked right (ties half)
    over expected pairs, a row never paired with itself."""
    negative = 1 - q
    pairs = float(q.sum() * negative.sum() - np.sum(q * negative))
    if pairs <= 1e-12:
        return None
    order = np.argsort(score, kind="stable")
    s, qs, ns = score[order], q[order], negative[order]
    unique, start = np.unique(s, return_index=True)
    group_neg = np.add.reduceat(ns, start)
    below = np.concatenate([[0.0], np.cumsum(group_neg)[:-1]])  # negatives strictly lower
    group = np.searchsorted(unique, s)
    tied = group_neg[group] - ns  # other rows with the same score
    won = float(np.sum(qs * (below[group] + 0.5 * tied)))
    return won / pairs


def _probabilities(probabilities: Any, k: int) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1 and k == 2:  # the positive-class column alone
        p = np.column_stack([1 - p, p])
    if p.ndim != 2 or p.shape[1] != k or not np.all(np.isfinite(p)):
        raise InvalidEstimationInputError(
            f"Probabilities must be a finite (rows, {k}) array, got shape {p.shape}.",
            hint="Pass one column per class, in the order of the classes.",
        )
    return p


def _label_indices(labels: Any, classes: Sequence[Any]) -> np.ndarray:
    slot = {c: i for i, c in enumerate(classes)}
    values = np.asarray(labels, dtype=object).ravel()
    index = np.fromiter((slot.get(v, -1) for v in values), np.int64, values.size)
    if (index < 0).any():
        unknown = list(dict.fromkeys(values[index < 0].tolist()))[:5]
        raise EstimationUnknownLabelError(
            f"Labels {unknown} are not among the classes {list(classes)[:20]}."
        )
    return index
