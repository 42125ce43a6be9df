"""The most similar past cases, so a reviewer decides with precedent in front of them.

A reviewer looking at one uncertain prediction decides better when shown the nearest
training rows and resolved reviews with their labels. The index is built at registration
from a seeded sample of the training table (at most ``max_rows`` rows, so it is small enough
to store as one JSON artifact beside the version and to search by brute force), and grows as
reviews are resolved.

Distance is Gower-like, a mean over features of one contribution each:

- numeric (and integer, boolean, datetime): ``|x - y| / IQR`` on robustly standardised
  values (median and inter-quartile range of the training sample, so one outlier does not
  squash every other row together);
- categorical: 0 when equal, 1 when different (an unseen category matches nothing);
- missing: 0 when both sides are missing, 1 when only one is.

Text columns are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd

from plinth.core.profile import CATEGORICAL_KINDS, NUMERIC_KINDS, SKIPPED_KINDS, numeric_column
from plinth.errors import InvalidNeighboursInputError, NotFittedError, PlinthError

#: Default cap on stored rows: brute force over 5,000 rows answers a query in about a
#: millisecond per ten features, and the JSON stays at a few megabytes.
MAX_ROWS = 5000

# Bound the (queries x stored rows) distance block so a big query does not allocate gigabytes.
_BLOCK_CELLS = 4_000_000

_MISSING = -1  # categorical code of a missing value
_UNSEEN = -2  # categorical code of a value the index has never stored (matches nothing)

FORMAT_VERSION = 1


class Neighbour(NamedTuple):
    """One stored case: its id (training index or review id), distance and label."""

    index: Any
    distance: float
    label: Any


def _not_fitted() -> PlinthError:
    return NotFittedError(
        "This NeighbourIndex has no rows yet.",
        hint="Call NeighbourIndex(...).fit(frame, kinds) or NeighbourIndex.from_dict(...) first.",
    )


def _plain(value: Any) -> Any:
    """A JSON-native scalar (numpy scalars unwrapped, NaN and NaT as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


class NeighbourIndex:
    """Brute-force nearest neighbours over a mixed numeric/categorical sample.

    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"age": rng.normal(40, 10, 200).round(1),
    ...                       "plan": rng.choice(["basic", "pro"], 200)})
    >>> index = NeighbourIndex(seed=0).fit(train, {"age": "numeric", "plan": "categorical"},
    ...                                    labels=rng.choice(["no", "yes"], 200))
    >>> case = pd.DataFrame({"age": [52.0], "plan": ["pro"]})
    >>> [(i, round(d, 3), y) for i, d, y in index.query(case, k=3)[0]]
    [(119, 0.015, 'no'), (137, 0.019, 'no'), (87, 0.034, 'no')]
    >>> index.add(case, ["yes"], ids=["review-1"])
    >>> index.query(case, k=1)[0]
    [Neighbour(index='review-1', distance=0.0, label='yes')]
    """

    numeric_columns_: list[str]
    categorical_columns_: list[str]
    center_: np.ndarray
    scale_: np.ndarray
    vocabulary_: list[list[Any]]
    numeric_: np.ndarray  # (rows, numeric columns), standardised, NaN when missing
    codes_: np.ndarray  # (rows, categorical columns), -1 when missing
    ids_: list[Any]
    labels_: list[Any]
    added_: np.ndarray  # bool per row: came from add() (resolved reviews), not from fit()
    _kinds: dict[str, str]

    def __init__(self, max_rows: int = MAX_ROWS, seed: int = 0) -> None:
        self.max_rows = max_rows
        self.seed = seed

    # ------------------------------------------------------------------ building

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str], labels: Any = None) -> Self:
        """Sample up to ``max_rows`` rows, learn the scaling, and store them with labels.

        ``kinds`` maps column -> numeric | integer | boolean | categorical | datetime | text
        (the contract's field types); text columns are skipped. ``labels`` is one value per
        row of ``frame`` (or None). Row ids are the frame's index values.
        """
        if self.max_rows < 1:
            raise InvalidNeighboursInputError(
                f"max_rows={self.max_rows} must be >= 1.",
                hint="Use the default, 5000.",
            )
        unknown = sorted(set(kinds.values()) - NUMERIC_KINDS - CATEGORICAL_KINDS - SKIPPED_KINDS)
        missing = [c for c in kinds if c not in frame.columns]
        if unknown or missing:
            raise InvalidNeighboursInputError(
                f"Cannot index: unknown kinds {unknown}, columns not in the frame {missing}.",
                hint="Kinds are numeric, integer, boolean, categorical, datetime or text, and "
                "every named column must be in the frame.",
            )
        label_values = self._labels(labels, len(frame))
        self._kinds = dict(kinds)
        self.numeric_columns_ = [c for c, k in kinds.items() if k in NUMERIC_KINDS]
        self.categorical_columns_ = [c for c, k in kinds.items() if k in CATEGORICAL_KINDS]
        if not self.numeric_columns_ and not self.categorical_columns_:
            raise InvalidNeighboursInputError(
                "No numeric or categorical column to measure distance on.",
                hint="Index at least one non-text feature.",
            )
        rows = np.arange(len(frame))
        if len(frame) > self.max_rows:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(len(frame), self.max_rows, replace=False))
        sample = frame.iloc[rows]

        raw = self._raw_numeric(sample)
        # Robust scale: median and IQR; fall back to the standard deviation, then to 1, for
        # columns that are (almost) constant, so no division by zero ever happens.
        with np.errstate(all="ignore"):
            finite = [col[np.isfinite(col)] for col in raw.T]
            center = np.array([np.median(c) if c.size else 0.0 for c in finite])
            iqr = np.array(
                [np.subtract(*np.percentile(c, [75, 25])) if c.size else 0.0 for c in finite]
            )
            std = np.array([c.std() if c.size else 0.0 for c in finite])
        scale = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        self.center_ = center.astype(np.float64)
        self.scale_ = scale.astype(np.float64)
        self.numeric_ = (raw - self.center_) / self.scale_

        self.vocabulary_ = []
        for column in self.categorical_columns_:
            seen = sample[column].dropna()
            self.vocabulary_.append([_plain(v) for v in pd.unique(seen.astype(object))])
        self.codes_ = self._encode(sample)
        self.ids_ = [_plain(v) for v in sample.index]
        self.labels_ = [label_values[i] for i in rows.tolist()]
        self.added_ = np.zeros(len(rows), dtype=bool)
        return self

    def add(self, rows: pd.DataFrame, labels: Any, ids: Sequence[Any] | None = None) -> None:
        """Store resolved cases (e.g. reviews) so later reviewers see them as precedent.

        New categories join the vocabulary. Past ``max_rows``, the oldest training rows
        are dropped first, then the oldest added rows: a person's decision outweighs a
        random training row.
        """
        self._check_fitted()
        label_values = self._labels(labels, len(rows))
        if ids is None:
            ids = [_plain(v) for v in rows.index]
        elif len(ids) != len(rows):
            raise InvalidNeighboursInputError(
                f"Got {len(ids)} ids for {len(rows)} rows.",
                hint="Pass one id per row, or none.",
            )
        self._check_columns(rows)
        for j, column in enumerate(self.categorical_columns_):
            known = set(self.vocabulary_[j])
            for value in pd.unique(rows[column].dropna().astype(object)):
                plain = _plain(value)
                if plain not in known:
                    self.vocabulary_[j].append(plain)
                    known.add(plain)
        numeric = (self._raw_numeric(rows) - self.center_) / self.scale_
        self.numeric_ = np.vstack([self.numeric_, numeric])
        self.codes_ = np.vstack([self.codes_, self._encode(rows)])
        self.ids_ = [*self.ids_, *(_plain(i) for i in ids)]
        self.labels_ = [*self.labels_, *label_values]
        self.added_ = np.concatenate([self.added_, np.ones(len(rows), dtype=bool)])
        excess = len(self.ids_) - self.max_rows
        if excess > 0:
            # stable sort: training rows (False) before added ones, oldest first within each
            drop = np.argsort(self.added_, kind="stable")[:excess]
            keep = np.setdiff1d(np.arange(len(self.ids_)), drop)
            self.numeric_ = self.numeric_[keep]
            self.codes_ = self.codes_[keep]
            self.ids_ = [self.ids_[i] for i in keep.tolist()]
            self.labels_ = [self.labels_[i] for i in keep.tolist()]
            self.added_ = self.added_[keep]

    def copy(self) -> NeighbourIndex:
        """An independent copy: ``add`` on it leaves this index unchanged (a cached index
        stays the training sample while each query adds the resolved reviews)."""
        self._check_fitted()
        twin = NeighbourIndex(max_rows=self.max_rows, seed=self.seed)
        twin._kinds = dict(self._kinds)
        twin.numeric_columns_ = list(self.numeric_columns_)
        twin.categorical_columns_ = list(self.categorical_columns_)
        twin.center_ = self.center_.copy()
        twin.scale_ = self.scale_.copy()
        twin.vocabulary_ = [list(v) for v in self.vocabulary_]
        twin.numeric_ = self.numeric_.copy()
        twin.codes_ = self.codes_.copy()
        twin.ids_ = list(self.ids_)
        twin.labels_ = list(self.labels_)
        twin.added_ = self.added_.copy()
        return twin

    # ------------------------------------------------------------------ searching

    @property
    def n_rows_(self) -> int:
        """Rows stored (training sample plus added cases)."""
        self._check_fitted()
        return len(self.ids_)

    def distances(self, rows: pd.DataFrame) -> np.ndarray:
        """The (len(rows), stored rows) matrix of Gower-like distances."""
        self._check_fitted()
        self._check_columns(rows)
        numeric = (self._raw_numeric(rows) - self.center_) / self.scale_
        return self._pairwise(numeric, self._encode(rows))

    def stored_distances(self) -> np.ndarray:
        """The (stored rows, stored rows) distance matrix, e.g. for leave-one-out scores."""
        self._check_fitted()
        return self._pairwise(self.numeric_, self.codes_)

    def query(self, rows: pd.DataFrame, k: int = 5) -> list[list[Neighbour]]:
        """The ``k`` nearest stored cases of each row, nearest first (ties by storage order)."""
        self._check_fitted()
        if k < 1:
            raise InvalidNeighboursInputError(
                f"k={k} must be >= 1.",
                hint="Ask for at least one neighbour.",
            )
        self._check_columns(rows)
        numeric = (self._raw_numeric(rows) - self.center_) / self.scale_
        codes = self._encode(rows)
        k = min(k, self.n_rows_)
        result: list[list[Neighbour]] = []
        step = max(1, _BLOCK_CELLS // max(self.n_rows_, 1))
        for start in range(0, len(rows), step):
            block = self._pairwise(numeric[start : start + step], codes[start : start + step])
            nearest = _k_smallest(block, k)
            for r, cols in enumerate(nearest):
                result.append(
                    [
                        Neighbour(self.ids_[c], float(block[r, c]), self.labels_[c])
                        for c in cols.tolist()
                    ]
                )
        return result

    def _pairwise(self, numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
        n_features = len(self.numeric_columns_) + len(self.categorical_columns_)
        total = np.zeros((numeric.shape[0], self.numeric_.shape[0]))
        # one feature at a time keeps memory at (queries x rows), not x features as well
        for j in range(numeric.shape[1]):
            q, x = numeric[:, j], self.numeric_[:, j]
            diff = np.abs(q[:, None] - x[None, :])
            q_nan, x_nan = np.isnan(q), np.isnan(x)
            if q_nan.any() or x_nan.any():
                both = q_nan[:, None] & x_nan[None, :]
                diff = np.where(np.isnan(diff), np.where(both, 0.0, 1.0), diff)
            total += diff
        for j in range(codes.shape[1]):
            total += codes[:, j, None] != self.codes_[None, :, j]
        return total / n_features

    # ------------------------------------------------------------------ encoding

    def _check_fitted(self) -> None:
        if not hasattr(self, "ids_"):
            raise _not_fitted()

    def _check_columns(self, rows: pd.DataFrame) -> None:
        absent = [c for c in (*self.numeric_columns_, *self.categorical_columns_) if c not in rows]
        if absent:
            raise InvalidNeighboursInputError(
                f"Rows lack the indexed columns {absent}.",
                hint="Pass rows with the same features the index was fitted on.",
            )

    @staticmethod
    def _labels(labels: Any, n: int) -> list[Any]:
        if labels is None:
            return [None] * n
        values = [_plain(v) for v in np.asarray(labels, dtype=object).ravel().tolist()]
        if len(values) != n:
            raise InvalidNeighboursInputError(
                f"Got {len(values)} labels for {n} rows.",
                hint="Pass one label per row, or None.",
            )
        return values

    def _raw_numeric(self, rows: pd.DataFrame) -> np.ndarray:
        columns = [numeric_column(rows[c], self._kind(c)) for c in self.numeric_columns_]
        if not columns:
            return np.zeros((len(rows), 0))
        matrix = np.column_stack(columns).astype(np.float64)
        matrix[~np.isfinite(matrix)] = np.nan
        return matrix

    def _kind(self, column: str) -> str:
        return self._kinds.get(column, "numeric")

    def _encode(self, rows: pd.DataFrame) -> np.ndarray:
        codes = np.empty((len(rows), len(self.categorical_columns_)), dtype=np.int64)
        for j, column in enumerate(self.categorical_columns_):
            values = rows[column].astype(object)
            null = np.asarray(pd.isna(values), dtype=bool)
            plain = [_plain(v) for v in values.tolist()]
            index = pd.Index(self.vocabulary_[j], dtype=object).get_indexer(
                pd.Index(plain, dtype=object)
            )
            index = np.where(index < 0, _UNSEEN, index)
            codes[:, j] = np.where(null, _MISSING, index)
        return codes

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the scaling, vocabularies and the stored sample (NaN as None)."""
        self._check_fitted()
        numeric = self.numeric_.astype(object)
        numeric[np.isnan(self.numeric_)] = None
        return {
            "format": FORMAT_VERSION,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "kinds": dict(self._kinds),
            "numeric_columns": list(self.numeric_columns_),
            "categorical_columns": list(self.categorical_columns_),
            "center": self.center_.tolist(),
            "scale": self.scale_.tolist(),
            "vocabulary": [list(v) for v in self.vocabulary_],
            "numeric": numeric.tolist(),
            "codes": self.codes_.tolist(),
            "ids": list(self.ids_),
            "labels": list(self.labels_),
            "added": self.added_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NeighbourIndex:
        index = cls(max_rows=int(data["max_rows"]), seed=int(data["seed"]))
        index._kinds = dict(data["kinds"])
        index.numeric_columns_ = list(data["numeric_columns"])
        index.categorical_columns_ = list(data["categorical_columns"])
        index.center_ = np.asarray(data["center"], dtype=np.float64)
        index.scale_ = np.asarray(data["scale"], dtype=np.float64)
        index.vocabulary_ = [list(v) for v in data["vocabulary"]]
        n = len(data["ids"])
        index.numeric_ = np.array(
            [[np.nan if v is None else v for v in row] for row in data["numeric"]],
            dtype=np.float64,
        ).reshape(n, len(index.numeric_columns_))
        index.codes_ = np.asarray(data["codes"], dtype=np.int64).reshape(
            n, len(index.categorical_columns_)
        )
        index.ids_ = list(data["ids"])
        index.labels_ = list(data["labels"])
        index.added_ = np.asarray(data["added"], dtype=bool).reshape(n)
        return index


def _k_smallest(distances: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest per row, sorted by (distance, column)."""
    # A stable sort rather than argpartition: ties must resolve the same way on every
    # replica, and at 5,000 stored rows the n log n costs well under a millisecond per row.
    return np.argsort(distances, axis=1, kind="stable")[:, :k]
