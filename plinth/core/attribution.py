"""Which features drove one prediction: model-agnostic local attribution.

A reviewer deciding whether to trust a prediction needs to see what the model leaned on.
Both methods here need only a predict function (``predict_proba`` for classifiers, so the
output is a probability, or ``predict`` for regressors) and a background sample of training
rows, so they work for any flavor, pipeline or column type:

- ``occlusion``: for each feature, the drop in the output when that feature alone is
  replaced by background values, averaged over the background. One model call over
  ``features x n_background`` rows. Exact for additive models; it misses interactions.
- ``shapley_sampling``: interventional Shapley values estimated by permutation sampling
  with antithetic (reversed) permutations. The values always add up to
  ``output - base`` (``base`` is the mean output on the background rows used), and for a
  linear model every sample is exact.

The explained output is the probability of the class predicted for the row (or the
``target`` column you name) for classifiers, and the value for regressors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from plinth.errors import InvalidAttributionInputError

Predict = Callable[[pd.DataFrame], Any]

#: Background rows per feature for occlusion, and per permutation pair for Shapley sampling.
N_BACKGROUND = 50
#: Permutations per background row (an even number: each one comes with its reverse).
N_PERMUTATIONS = 2
#: Rows per model call, so memory stays bounded on wide tables.
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Attribution:
    """Per-feature contributions to one prediction, and what they are measured against."""

    values: dict[str, float]
    base: float  # mean model output on the background rows
    output: float  # model output on the explained row
    target: int | None  # probability column explained (classifiers), None for regressors
    method: str

    def ranked(self, top: int | None = None) -> list[tuple[str, float]]:
        """Features by decreasing absolute contribution (ties by name)."""
        items = sorted(self.values.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        return items if top is None else items[:top]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "output": self.output,
            "base": self.base,
            "target": self.target,
            "values": dict(self.values),
        }


def _prepare(
    row: pd.DataFrame,
    reference: pd.DataFrame,
    features: Sequence[str] | None,
    n_background: int,
    seed: int,
) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """Validated features, the row, and a seeded background sample, stacked in one frame."""
    if len(row) != 1:
        raise InvalidAttributionInputError(
            f"Explain one row at a time, got {len(row)}.",
            hint="Pass frame.iloc[[i]].",
        )
    if len(reference) == 0 or n_background < 1:
        raise InvalidAttributionInputError(
            "Attribution needs at least one background row.",
            hint="Pass a sample of the training table as reference.",
        )
    chosen = list(row.columns if features is None else features)
    absent = [c for c in row.columns if c not in reference.columns]
    unknown = [c for c in chosen if c not in row.columns]
    if absent or unknown:
        raise InvalidAttributionInputError(
            f"Reference lacks columns {absent}; features not in the row {unknown}.",
            hint="Reference rows must have every column of the row.",
        )
    rng = np.random.default_rng(seed)
    take = rng.choice(len(reference), min(n_background, len(reference)), replace=False)
    background = reference.iloc[np.sort(take)][list(row.columns)]
    # Row 0 is the explained row, rows 1.. the background: every perturbed row is then a
    # per-column choice of a source row, built with one take() per column (dtype-preserving,
    # so string and categorical columns work as well as numbers).
    stacked = pd.concat([row, background], ignore_index=True)
    return chosen, background, stacked


def _compose(stacked: pd.DataFrame, sources: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: stacked[c].take(sources[c]).reset_index(drop=True) for c in stacked.columns}
    )


def _evaluate(
    predict: Predict,
    stacked: pd.DataFrame,
    sources: dict[str, np.ndarray],
    target: int | None,
    batch_rows: int,
) -> np.ndarray:
    n = len(next(iter(sources.values())))
    outputs = []
    for start in range(0, n, batch_rows):
        part = {c: s[start : start + batch_rows] for c, s in sources.items()}
        outputs.append(_output(predict(_compose(stacked, part)), target))
    return np.concatenate(outputs) if outputs else np.zeros(0)


def _output(raw: Any, target: int | None) -> np.ndarray:
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 2:
        if target is None:
            raise InvalidAttributionInputError(
                "The model returned several columns.",
                hint="Name a target column.",
            )
        return np.asarray(values[:, target])
    if values.ndim != 1:
        raise InvalidAttributionInputError(
            f"predict returned shape {values.shape}, not (rows,) or (rows, classes).",
            hint="Pass predict_proba for classifiers, predict for regressors.",
        )
    return values


def _explained(predict: Predict, row: pd.DataFrame, target: int | None) -> tuple[float, int | None]:
    """The output on the row and the column explained (the predicted class by default)."""
    values = np.asarray(predict(row), dtype=np.float64)
    if values.ndim == 2 and values.shape[1] > 1:
        column = int(values[0].argmax()) if target is None else target
        return float(values[0, column]), column
    return float(values.reshape(-1)[0]), None


def occlusion(
    predict: Predict,
    row: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    target: int | None = None,
    n_background: int = N_BACKGROUND,
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
) -> Attribution:
    """How much the output drops when one feature forgets its value: for each feature,
    ``f(x) - mean_b f(x with that feature set to background row b)``. Cheap
    (``features x n_background`` rows, one model call) and exact for additive models.

    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    >>> linear = lambda f: 3 * f["a"].to_numpy() - 2 * f["b"].to_numpy()
    >>> row = pd.DataFrame({"a": [1.0], "b": [1.0]})
    >>> result = occlusion(linear, row, train, n_background=200)
    >>> {k: round(v, 4) for k, v in result.values.items()}, round(result.base, 4)
    ({'a': 2.9542, 'b': -2.177}, 0.2228)
    """
    output, column = _explained(predict, row, target)
    chosen, background, stacked = _prepare(row, reference, features, n_background, seed)
    m = len(background)
    background_rows = np.arange(1, m + 1)
    sources: dict[str, np.ndarray] = {}
    for c in stacked.columns:
        src = np.zeros(len(chosen) * m, dtype=np.int64)  # row 0: keep the explained value
        if c in chosen:
            j = chosen.index(c)
            src[j * m : (j + 1) * m] = background_rows
        sources[c] = src
    # the background itself (every column from background row b) gives the base value
    for c in stacked.columns:
        sources[c] = np.concatenate([sources[c], background_rows])
    values = _evaluate(predict, stacked, sources, column, batch_rows)
    occluded = values[: len(chosen) * m].reshape(len(chosen), m).mean(axis=1)
    base = float(values[len(chosen) * m :].mean())
    return Attribution(
        values={c: float(output - occluded[j]) for j, c in enumerate(chosen)},
        base=base,
        output=output,
        target=column,
        method="occlusion",
    )


def shapley_sampling(
    predict: Predict,
    row: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    target: int | None = None,
    n_background: int = N_BACKGROUND,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
) -> Attribution:
    """Interventional Shapley values by permutation sampling: fair shares of
    ``f(x) - E[f(background)]`` that account for interactions, which occlusion misses.

    For each background row z and each sampled feature order (with its reverse, an
    antithetic pair that cancels much of the ordering noise), features switch from z's
    value to x's one at a time; each feature is credited with the change in output when it
    switched. The credits add up to ``f(x) - f(z)`` exactly on every path, so the result
    sums to ``output - base``. Cost: ``n_background x n_permutations x (features - 1)`` rows.

    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    >>> both = lambda f: (f["a"].to_numpy() > 0) * (f["b"].to_numpy() > 0) * 1.0
    >>> row = pd.DataFrame({"a": [1.0], "b": [1.0]})
    >>> result = shapley_sampling(both, row, train, n_background=100)
    >>> {k: round(v, 4) for k, v in result.values.items()}, result.base, result.output
    ({'a': 0.35, 'b': 0.39}, 0.26, 1.0)
    """
    if n_permutations < 2 or n_permutations % 2:
        raise InvalidAttributionInputError(
            f"n_permutations={n_permutations} must be an even number >= 2.",
            hint="Permutations come in antithetic pairs; use 2 or 4.",
        )
    output, column = _explained(predict, row, target)
    chosen, background, stacked = _prepare(row, reference, features, n_background, seed)
    d, m = len(chosen), len(background)
    rng = np.random.default_rng([seed, 1])  # independent of the background draw
    half = rng.permuted(np.tile(np.arange(d), (m * n_permutations // 2, 1)), axis=1)
    orders = np.concatenate([half, half[:, ::-1]])  # antithetic: each order and its reverse
    n_paths = orders.shape[0]
    path_background = np.tile(np.arange(1, m + 1), n_permutations)
    # position[p, j]: the step at which feature j switches to x on path p (1-based)
    position = np.empty_like(orders)
    np.put_along_axis(position, orders, np.arange(1, d + 1)[None, :], axis=1)
    # Interior states only: after step s (1..d-1) the features with position <= s hold x.
    # Step 0 is the background row and step d is x itself; both are known without a call.
    steps = np.arange(1, d)
    sources: dict[str, np.ndarray] = {}
    for c in stacked.columns:
        if c in chosen:
            holds_x = position[:, chosen.index(c)][:, None] <= steps[None, :]  # (paths, d-1)
            src = np.where(holds_x, 0, path_background[:, None])
        else:
            src = np.zeros((n_paths, d - 1), dtype=np.int64)
        sources[c] = np.concatenate([src.reshape(-1), np.arange(1, m + 1)])
    values = _evaluate(predict, stacked, sources, column, batch_rows)
    interior = values[: n_paths * (d - 1)].reshape(n_paths, d - 1)
    background_out = values[n_paths * (d - 1) :]
    path = np.column_stack(
        [background_out[path_background - 1], interior, np.full(n_paths, output)]
    )
    gains = np.diff(path, axis=1)  # gains[p, s]: credit of the feature switched at step s+1
    credit = np.zeros((n_paths, d))
    np.put_along_axis(credit, orders, gains, axis=1)
    phi = credit.mean(axis=0)
    return Attribution(
        values={c: float(phi[j]) for j, c in enumerate(chosen)},
        base=float(background_out.mean()),
        output=output,
        target=column,
        method="shapley_sampling",
    )
