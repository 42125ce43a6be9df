"""Folding one batch into every section of a profile at once: the request path's hot loop.

A profile is updated once per served batch, so this is worked out once per profile and
reused: counts laid out as one flat array, numeric features binned together by one broadcast
comparison, labels of all categorical features looked up in one pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.profile.bins import SMALL_BATCH, FeatureBins
from plinth.core.profile.columns import frame_blocks, numeric_column, object_column_as_float


class BatchPlan:
    """What lets one batch update every section at once, worked out once per profile.

    Every section's ``counts`` (features, prediction, confidence) becomes a view into one
    flat array, so a batch lands with a single ``np.bincount`` plus one vectorised add.
    Numeric sections are binned together: one (bounds x features) matrix holds each
    feature's edges, padded with ``+inf``, and a few extra bounds, and one broadcast
    comparison counts, per feature, the values above each bound; differences of those
    counts are the right-closed bins. Labels of all categorical sections are looked up in
    one pass. Rows are taken in chunks so the comparison never needs much memory.
    """

    def __init__(
        self,
        features: Mapping[str, FeatureBins],
        output: FeatureBins | None,
        confidence: FeatureBins | None,
    ) -> None:
        self.numeric = [b for b in features.values() if b.kind == "numeric"]
        self.categorical = [b for b in features.values() if b.kind == "categorical"]
        self.features = len(self.numeric), len(self.categorical)
        # The prediction and confidence sections go last, fed from the outputs, not the frame.
        self.output_numeric = self.output_categorical = self.confidence = -1
        if output is not None and output.kind == "numeric":
            self.output_numeric = len(self.numeric)
            self.numeric.append(output)
        elif output is not None:
            self.output_categorical = len(self.categorical)
            self.categorical.append(output)
        if confidence is not None:
            self.confidence = len(self.numeric)
            self.numeric.append(confidence)
        ordered = self.sections = [*self.numeric, *self.categorical]
        widths = [len(b.counts) for b in ordered]
        starts = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)
        self.flat = (
            np.concatenate([b.counts for b in ordered]).astype(np.int64)
            if ordered
            else np.zeros(0, dtype=np.int64)
        )
        for b, lo, hi in zip(ordered, starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            b.counts = self.flat[lo:hi]
        self.cat_start = starts[len(self.numeric) : -1].tolist()
        n = len(self.numeric)
        self.num_size = int(starts[n])
        self.k = k = max(max((len(b.edges or []) for b in self.numeric), default=0), 1)
        # Bounds compared with every value at once, one row per bound, one column per
        # feature: -inf (counts the finite values), the edges padded with +inf, the largest
        # float below the training minimum (what is above it is not below the range), and
        # the training maximum. NaN compares false with everything, so nulls count nowhere.
        low = np.asarray([-np.inf if b.minimum is None else b.minimum for b in self.numeric])
        high = np.asarray([np.inf if b.maximum is None else b.maximum for b in self.numeric])
        self.bounds = np.full((k + 3, n), np.inf)
        self.bounds[0] = -np.inf
        for j, b in enumerate(self.numeric):
            self.bounds[1 : 1 + len(b.edges or []), j] = b.edges or []
        self.bounds[k + 1] = np.nextafter(low, -np.inf)
        self.bounds[k + 2] = high
        # Bin i of feature j is entry (i, j) of a (k + 1) x n matrix of differences; these
        # positions of its flattened form are the numeric sections of ``flat``, in order.
        self.gather = np.asarray(
            [i * n + j for j, b in enumerate(self.numeric) for i in range(len(b.counts))],
            dtype=np.intp,
        )
        self.chunk = max(256, (1 << 22) // max(self.bounds.size, 1))
        self.center = np.asarray([b.center for b in self.numeric])
        # One extra False at the end, so that indexing with -1 (not numeric) is harmless.
        self.is_datetime = np.asarray([b.source_kind == "datetime" for b in self.numeric] + [False])
        self._columns: pd.Index | None = None
        self._numeric_at = np.zeros(0, dtype=np.intp)
        self._numeric_list: list[int] = []
        self._categorical_list: list[int] = []

    def intact(self) -> bool:
        """Whether every section's counts are still this plan's views."""
        return all(b.counts.base is self.flat for b in self.sections)

    def _locate(self, columns: pd.Index) -> None:
        """Map column positions to numeric / categorical feature indexes (-1: not profiled)."""
        if columns is self._columns:
            return  # the contract builds every batch's frame on one Index object
        if self._columns is not None and columns.equals(self._columns):
            self._columns = columns
            return
        n_numeric, n_categorical = self.features
        numeric = {b.name: j for j, b in enumerate(self.numeric[:n_numeric])}
        categorical = {b.name: c for c, b in enumerate(self.categorical[:n_categorical])}
        names = list(columns)
        self._numeric_list = [numeric.get(n, -1) for n in names]
        self._categorical_list = [categorical.get(n, -1) for n in names]
        self._numeric_at = np.asarray(self._numeric_list, dtype=np.intp)
        self._columns = columns

    def _columns_of(
        self, frame: pd.DataFrame
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[int, Any]], list[tuple[int, Any]]]:
        """The frame's profiled columns: 2-D numeric blocks, other numeric columns, labels."""
        wide: list[tuple[np.ndarray, np.ndarray]] = []  # (numeric indexes, block rows)
        single: list[tuple[int, Any]] = []  # (numeric index, one column)
        labels: list[tuple[int, Any]] = []  # (categorical index, one column)
        numeric_at, categorical_at = self._numeric_list, self._categorical_list
        for values, locs in frame_blocks(frame):
            if values.ndim == 1:  # an extension array: one column
                at = int(locs[0])
                if numeric_at[at] >= 0:
                    single.append((numeric_at[at], values))
                elif categorical_at[at] >= 0:
                    labels.append((categorical_at[at], values))
                continue
            others: Sequence[int] = range(len(locs))
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
                # Plain numbers: the whole block goes into the matrix in one assignment.
                numeric = self._numeric_at[locs]
                plain = (numeric >= 0) & ~self.is_datetime[numeric]
                if plain.all():
                    wide.append((numeric, values))
                    continue
                if plain.any():
                    wide.append((numeric[plain], values[plain]))
                others = np.flatnonzero(~plain).tolist()
            for k in others:
                at = int(locs[k])
                if numeric_at[at] >= 0:
                    single.append((numeric_at[at], values[k]))
                elif categorical_at[at] >= 0:
                    labels.append((categorical_at[at], values[k]))
        return wide, single, labels

    def fold(self, frame: pd.DataFrame, outputs: Any = None, confidence: Any = None) -> None:
        """Fold a batch; ``outputs`` and ``confidence`` (one per row, or None) too."""
        rows = len(frame)
        self._locate(frame.columns)
        wide, single, labels = self._columns_of(frame)
        unfed: list[int] = []  # numeric output sections with nothing to fold this time
        for j, values in ((self.output_numeric, outputs), (self.confidence, confidence)):
            if j >= 0:
                if values is None:
                    unfed.append(j)
                else:
                    single.append((j, values))
        if self.output_categorical >= 0 and outputs is not None:
            labels.append((self.output_categorical, outputs))
        if self.numeric:
            for lo in range(0, rows, self.chunk):
                hi = min(rows, lo + self.chunk)
                x = np.full((hi - lo, len(self.numeric)), np.nan)
                for js, block in wide:
                    x[:, js] = block[:, lo:hi].T
                for j, column in single:
                    x[:, j] = self._as_float(j, column[lo:hi])
                self._bin_numeric(x, unfed)
        seen = {c for c, _ in labels}
        for c in range(self.features[1]):
            if c not in seen:
                self.categorical[c].nulls += rows  # a column missing from the batch: all null
        if labels:
            codes = self._label_codes(labels, rows)
            self.flat += np.bincount(codes, minlength=self.flat.size)

    def _label_codes(self, labels: list[tuple[int, Any]], rows: int) -> np.ndarray:
        """Flat count indexes of every label of every categorical section."""
        parts: list[np.ndarray] = []
        small: list[tuple[int, Any]] = []
        for c, column in labels:
            if rows > SMALL_BATCH or isinstance(column, pd.Categorical):
                parts.append(self.categorical[c].slots_of(column) + self.cat_start[c])
            else:
                if not isinstance(column, np.ndarray) and hasattr(column, "__arrow_array__"):
                    column = column.__arrow_array__().to_pylist()  # one conversion, not 32
                small.append((c, column))
        if small:
            # Small batches: every lookup of every column in one C-level pass.
            lookups = [self.categorical[c].lookup() for c, _ in small]
            codes = np.fromiter(
                itertools.chain.from_iterable(
                    map(lookup.__getitem__, column)
                    for lookup, (_, column) in zip(lookups, small, strict=True)
                ),
                np.int64,
                rows * len(small),
            ).reshape(len(small), rows)
            missing = codes < 0
            tidy = not missing.any()
            if not tidy:  # nulls and unseen labels: sort them out column by column
                for i in np.flatnonzero(missing.any(axis=1)).tolist():
                    c, column = small[i]
                    codes[i] = self.categorical[c].resolve_missing(codes[i], column)
                valid = codes >= 0  # nulls are left at -1
            codes += np.asarray([self.cat_start[c] for c, _ in small])[:, None]
            parts.append(codes.ravel() if tidy else codes[valid])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _as_float(self, j: int, column: Any) -> np.ndarray:
        """One column as float64 the way ``numeric_column`` reads it; junk becomes NaN."""
        kind = self.numeric[j].source_kind
        if kind != "datetime" and isinstance(column, np.ndarray):
            return object_column_as_float(column)
        if kind != "datetime":
            try:
                return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
            except (TypeError, ValueError):
                pass
        return numeric_column(pd.Series(column, copy=False), kind)

    def _bin_numeric(self, x: np.ndarray, unfed: list[int]) -> None:
        """Count a (rows x numeric sections) matrix into the bins, nulls, range and sums."""
        finite = np.isfinite(x)
        clean = bool(finite.all())
        if not clean:
            x = np.where(finite, x, np.nan)  # ±inf counts as null, like NaN
        # above[r, j]: values of section j strictly above bound r (see __init__).
        above = (x[None, :, :] > self.bounds[:, None, :]).sum(axis=1, dtype=np.int64)
        k = self.k
        present = above[0]
        # Right-closed bins: bin i holds what is above edge i-1 but not above edge i.
        bins = above[: k + 1].copy()
        bins[:-1] -= above[1 : k + 1]
        self.flat[: self.num_size] += bins.ravel().take(self.gather)
        nulls = x.shape[0] - present
        if unfed:
            nulls[unfed] = 0  # an output section given no outputs saw nothing, not nulls
        outside = present - above[k + 1] + above[k + 2]
        shifted = x - self.center
        if not clean:
            shifted[~finite] = 0.0
        sums = shifted.sum(axis=0)
        squares = np.einsum("ij,ij->j", shifted, shifted)
        for b, n, o, s, q in zip(
            self.numeric, nulls.tolist(), outside.tolist(), sums.tolist(), squares.tolist(),
            strict=True,
        ):  # fmt: skip
            b.nulls += n
            b.out_of_range += o
            b.sum += s
            b.sum_sq += q
