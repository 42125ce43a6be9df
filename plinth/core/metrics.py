"""Performance metrics for holdout evaluation and for live traffic once labels arrive.

Plain numpy, so the same numbers come out at registration (holdout), in the monitor (labelled
live predictions) and in the retraining gate. Metrics that are undefined on the data at hand
(AUC with one class present, MAPE with only zero targets, R² of a constant target) are left
out of the result rather than reported as NaN, so every value is JSON-ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from plinth.errors import (
    MetricsShapeMismatchError,
    MetricsUnknownLabelError,
    NoMetricsDataError,
    NonFiniteMetricsInputError,
)

#: Probabilities are clipped to [LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON] so that a confident
#: mistake costs about 34.5 nats instead of infinity.
LOG_LOSS_EPSILON = 1e-15
#: Equal-width confidence bins for the expected calibration error.
ECE_BINS = 10


def _probabilities(proba: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1 and k == 2:  # the positive-class column alone, as many tools give it
        p = np.column_stack([1 - p, p])
    if p.shape != (n, k) or not np.all(np.isfinite(p)):
        raise MetricsShapeMismatchError(
            f"Probabilities must be a finite ({n}, {k}) array, got shape {p.shape}.",
            hint="Pass one row per label and one column per class, in the order of classes.",
        )
    return p


def _label_indices(y_true: Any, classes: Sequence[Any]) -> np.ndarray:
    slot = {c: i for i, c in enumerate(classes)}
    labels = np.asarray(y_true, dtype=object).ravel()
    index = np.fromiter((slot.get(v, -1) for v in labels), np.int64, labels.size)
    if (index < 0).any():
        unknown = list(dict.fromkeys(labels[index < 0].tolist()))
        raise MetricsUnknownLabelError(
            f"Labels {unknown[:5]} are not among the model's classes {list(classes)[:20]}."
        )
    return index


def roc_auc_binary(positive: Any, scores: Any) -> float | None:
    """Area under the ROC curve via ranks (Mann-Whitney U); ties count one half.

    None when only one class is present, where the AUC is undefined.

    >>> roc_auc_binary([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    is_pos = np.asarray(positive, dtype=bool)
    n_pos = int(is_pos.sum())
    n_neg = is_pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(np.asarray(scores, dtype=np.float64))  # average ranks for ties
    u = ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def expected_calibration_error(correct: Any, confidence: Any, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of (bin share) * |accuracy - mean confidence|.

    Bins are [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] for the default ten.

    >>> expected_calibration_error([1, 1, 0, 1], [0.95, 0.9, 0.65, 0.6])
    0.1
    """
    hit = np.asarray(correct, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    size = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=hit - conf, minlength=bins)
    # sum_b (n_b / n) * |mean(hit - conf) in b| = sum_b |sum(hit - conf) in b| / n
    return float(np.abs(gap[size > 0]).sum() / hit.size)


def classification_metrics(y_true: Any, proba: Any, classes: Sequence[Any]) -> dict[str, float]:
    """Accuracy, precision/recall/F1 (macro over ``classes``; plus plain binary ones for two
    classes, positive = ``classes[1]``), ROC AUC (binary, or one-vs-rest macro), log loss
    and expected calibration error. A ratio with a zero denominator counts as 0.

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> p1 = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.25, 200), 0.01, 0.99)
    >>> m = classification_metrics(y, np.column_stack([1 - p1, p1]), [0, 1])
    >>> {k: round(v, 4) for k, v in m.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'accuracy': 0.875, 'precision_macro': 0.873, 'recall_macro': 0.8763, 'f1_macro': 0.8741,
     'precision': 0.9057, 'recall': 0.8649, 'f1': 0.8848, 'roc_auc': 0.9431,
     'log_loss': 0.3363, 'ece': 0.0766}
    """
    k = len(classes)
    truth = _label_indices(y_true, classes)
    n = truth.size
    if n == 0 or k == 0:
        raise NoMetricsDataError("No labelled rows (or no classes) to score.")
    p = _probabilities(proba, n, k)
    predicted = p.argmax(axis=1)
    correct = predicted == truth

    tp = np.bincount(truth[correct], minlength=k).astype(np.float64)
    predicted_n = np.bincount(predicted, minlength=k).astype(np.float64)
    actual_n = np.bincount(truth, minlength=k).astype(np.float64)
    precision = np.divide(tp, predicted_n, out=np.zeros(k), where=predicted_n > 0)
    recall = np.divide(tp, actual_n, out=np.zeros(k), where=actual_n > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(k), where=both > 0)

    result: dict[str, float] = {
        "accuracy": float(correct.mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
    }
    if k == 2:
        result.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
        auc = roc_auc_binary(truth == 1, p[:, 1])
    else:
        per_class = [roc_auc_binary(truth == j, p[:, j]) for j in range(k)]
        defined = [a for a in per_class if a is not None]
        auc = float(np.mean(defined)) if defined else None
    if auc is not None:
        result["roc_auc"] = auc
    chosen = np.clip(p[np.arange(n), truth], LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    result["log_loss"] = float(-np.log(chosen).mean())
    result["ece"] = expected_calibration_error(correct, p.max(axis=1))
    return result


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MAE, RMSE, MAPE (a fraction, over non-zero targets only, since a zero target has no
    percentage error) and R² (left out for a constant target).

    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(10, 2, 100)
    >>> m = regression_metrics(y, y + rng.normal(0, 0.5, 100))
    >>> {k: round(v, 4) for k, v in m.items()}
    {'mae': 0.3832, 'rmse': 0.4785, 'mape': 0.0383, 'r2': 0.9382}
    """
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if truth.shape != pred.shape or truth.size == 0:
        raise MetricsShapeMismatchError(
            f"Need as many predictions as targets (got {pred.size} and {truth.size}, "
            "at least one).",
            hint="Pass one prediction per labelled row.",
        )
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(pred))):
        raise NonFiniteMetricsInputError("Targets and predictions must be finite numbers.")
    error = pred - truth
    result = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(np.mean(error * error))),
    }
    nonzero = truth != 0
    if nonzero.any():
        result["mape"] = float(np.mean(np.abs(error[nonzero] / truth[nonzero])))
    spread = float(np.sum((truth - truth.mean()) ** 2))
    if spread > 0:
        result["r2"] = float(1 - np.sum(error * error) / spread)
    return result
