"""One feature's bins: fitted on training values, filled by live values, merged by addition.

Numeric features get interior edges at training quantiles and right-closed bins
``(-inf, e0], (e0, e1], ..., (ek, inf)``; categorical features get their known categories plus
one last slot for anything else ("unseen"). Missing and non-finite values are counted apart
as ``nulls`` and never enter a bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import pandas as pd

from plinth.core.profile.columns import json_scalar
from plinth.errors import IncompatibleProfileError

BinKind = Literal["numeric", "categorical"]

# Up to this many labels a dict lookup per value beats building a pandas Index to look
# them up in; above it ``Index.get_indexer`` wins.
SMALL_BATCH = 1024


class _Slots(dict[Any, int]):
    """Category -> slot; anything else -> -1, so ``map(slots.__getitem__, values)`` runs in C."""

    def __missing__(self, key: Any) -> int:
        return -1


@dataclass(eq=False)
class FeatureBins:
    """One feature's bins, counts, null and out-of-range counts, and running moments.

    ``sum`` and ``sum_sq`` are of ``x - center`` (``center`` is the training mean): shifting
    keeps the variance exact for large offsets such as epoch seconds, and since every
    profile built from one reference shares the centre, the sums still merge by addition.
    """

    name: str
    kind: BinKind
    edges: list[float] | None
    categories: list[Any] | None
    minimum: float | None
    maximum: float | None
    counts: np.ndarray
    nulls: int = 0
    out_of_range: int = 0
    sum: float = 0.0
    sum_sq: float = 0.0
    center: float = 0.0
    source_kind: str = ""
    # category -> slot, built on first use; a dict lookup per value beats pandas on small batches
    _slots: _Slots | None = field(default=None, init=False, repr=False)
    _edge_array: np.ndarray | None = field(default=None, init=False, repr=False)
    _remap: tuple[Any, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if not self.source_kind:
            self.source_kind = self.kind

    @property
    def total(self) -> int:
        """Values that landed in a bin (rows minus nulls)."""
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        """Rows seen, nulls included."""
        return self.total + self.nulls

    def mean(self) -> float | None:
        """Mean of the values folded in; ``None`` when there were none."""
        n = self.total
        return None if self.kind != "numeric" or n == 0 else self.center + self.sum / n

    def std(self) -> float | None:
        """Population standard deviation of the values folded in."""
        n = self.total
        if self.kind != "numeric" or n == 0:
            return None
        mean_shift = self.sum / n
        return math.sqrt(max(self.sum_sq / n - mean_shift * mean_shift, 0.0))

    def same_bins(self, other: FeatureBins) -> bool:
        """Whether two bins share one definition, so their counts can be added or compared."""
        return (
            self.name == other.name
            and self.kind == other.kind
            and self.source_kind == other.source_kind
            and self.edges == other.edges
            and self.categories == other.categories
            and self.minimum == other.minimum
            and self.maximum == other.maximum
            and self.center == other.center
            and len(self.counts) == len(other.counts)
        )

    def check_compatible(self, other: FeatureBins) -> None:
        if not self.same_bins(other):
            raise IncompatibleProfileError(
                f"Feature {self.name!r} has different bins in the two profiles."
            )

    def empty_like(self) -> FeatureBins:
        """The same bins with every count and sum at zero."""
        return FeatureBins(
            name=self.name,
            kind=self.kind,
            edges=None if self.edges is None else list(self.edges),
            categories=None if self.categories is None else list(self.categories),
            minimum=self.minimum,
            maximum=self.maximum,
            counts=np.zeros_like(self.counts),
            center=self.center,
            source_kind=self.source_kind,
        )

    def merge(self, other: FeatureBins) -> FeatureBins:
        """Counts and sums added; exact for counts, floating-point for the sums."""
        self.check_compatible(other)
        merged = self.empty_like()
        merged.counts = self.counts + other.counts
        merged.nulls = self.nulls + other.nulls
        merged.out_of_range = self.out_of_range + other.out_of_range
        merged.sum = self.sum + other.sum
        merged.sum_sq = self.sum_sq + other.sum_sq
        return merged

    def __add__(self, other: FeatureBins) -> FeatureBins:
        return self.merge(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureBins) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source_kind": self.source_kind,
            "edges": self.edges,
            "categories": self.categories,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "center": self.center,
            "counts": [int(c) for c in self.counts],
            "nulls": int(self.nulls),
            "out_of_range": int(self.out_of_range),
            "sum": float(self.sum),
            "sum_sq": float(self.sum_sq),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBins:
        return cls(
            name=data["name"],
            kind=data["kind"],
            edges=None if data["edges"] is None else [float(e) for e in data["edges"]],
            categories=None if data["categories"] is None else list(data["categories"]),
            minimum=data["minimum"],
            maximum=data["maximum"],
            counts=np.asarray(data["counts"], dtype=np.int64),
            nulls=int(data["nulls"]),
            out_of_range=int(data["out_of_range"]),
            sum=float(data["sum"]),
            sum_sq=float(data["sum_sq"]),
            center=float(data["center"]),
            source_kind=data["source_kind"],
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def fit_numeric(cls, name: str, values: np.ndarray, *, bins: int, source_kind: str) -> Self:
        """Interior edges at the training quantiles 1/bins, ..., (bins-1)/bins, deduplicated.

        ``inverted_cdf`` quantiles are observed values, so integer and boolean features get
        edges on their own values (a boolean gets the single edge 0: bins ``<=0`` and ``>0``)
        instead of interpolated edges that would leave empty reference bins.
        """
        finite = values[np.isfinite(values)]
        if finite.size:
            probs = np.arange(1, bins) / bins
            edges = np.unique(np.quantile(finite, probs, method="inverted_cdf"))
            if edges.size == 0:  # bins == 1
                edges = np.asarray([np.median(finite)])
            minimum, maximum = float(finite.min()), float(finite.max())
            center = float(finite.mean())
        else:
            edges, minimum, maximum, center = np.asarray([], dtype=float), None, None, 0.0
        return cls(
            name=name,
            kind="numeric",
            edges=[float(e) for e in edges],
            categories=None,
            minimum=minimum,
            maximum=maximum,
            counts=np.zeros(edges.size + 1, dtype=np.int64),
            center=center,
            source_kind=source_kind,
        )

    @classmethod
    def fit_categorical(
        cls,
        name: str,
        values: pd.Series,
        *,
        max_categories: int,
        categories: Sequence[Any] | None = None,
    ) -> Self:
        """The ``max_categories`` most frequent values (ties broken by text), most frequent first.

        Rarer training values share the last slot with values never seen in training, so a
        high-cardinality column (an id) costs a bounded number of bins.
        """
        if categories is None:
            frequency = values.value_counts(dropna=True)
            # A pandas Categorical lists declared-but-absent categories with count 0; a value
            # the model never saw in training is "unseen" whatever the dtype declared.
            frequency = frequency[frequency > 0]
            ranked = sorted(
                ((int(n), json_scalar(v)) for v, n in frequency.items()),
                key=lambda item: (-item[0], str(item[1])),
            )
            categories = [v for _, v in ranked[:max_categories]]
        known = [json_scalar(c) for c in categories]
        return cls(
            name=name,
            kind="categorical",
            edges=None,
            categories=known,
            minimum=None,
            maximum=None,
            counts=np.zeros(len(known) + 1, dtype=np.int64),
            source_kind="categorical",
        )

    # ------------------------------------------------------------------ folding values

    def add_numeric(self, values: np.ndarray) -> None:
        """Fold plain float values (NaN and inf count as nulls)."""
        assert self.edges is not None
        if self._edge_array is None:
            self._edge_array = np.asarray(self.edges, dtype=np.float64)
        finite = np.isfinite(values)
        x = values[finite]
        self.nulls += int(values.size - x.size)
        idx = np.searchsorted(self._edge_array, x, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        if self.minimum is not None and self.maximum is not None:
            self.out_of_range += int(np.count_nonzero((x < self.minimum) | (x > self.maximum)))
        shifted = x - self.center
        self.sum += float(shifted.sum())
        self.sum_sq += float(np.dot(shifted, shifted))

    def add_categorical(self, values: Any) -> None:
        """Fold labels: known ones to their slot, anything else to the unseen slot."""
        self.counts += np.bincount(self.slots_of(values), minlength=self.counts.size)

    def lookup(self) -> _Slots:
        """Category -> slot (-1 for anything else), built on first use."""
        if self._slots is None:
            assert self.categories is not None
            self._slots = _Slots((c, i) for i, c in enumerate(self.categories))
        return self._slots

    def slots_of(self, values: Any) -> np.ndarray:
        """Each non-null label's slot (the last slot for unseen ones); counts the nulls.

        Takes a numpy array, a pandas extension array or a ``pd.Categorical`` (whose codes
        are mapped once per category set, so the batch itself is one indexing operation).
        """
        assert self.categories is not None
        lookup = self.lookup()
        if isinstance(values, pd.Categorical):
            cached = self._remap
            if cached is None or cached[0] is not values.categories:
                # Once per category set (the contract reuses one dtype for every batch);
                # code -1 (a missing value) indexes the appended -1 and stays "missing".
                unseen = len(self.categories)
                remap = [lookup.get(c, unseen) for c in values.categories]
                cached = self._remap = (values.categories, np.asarray([*remap, -1], np.int64))
            codes: np.ndarray = cached[1][values.codes]
            nulls = codes < 0
            self.nulls += int(nulls.sum())
            return codes[~nulls] if nulls.any() else codes
        size = len(values)
        if size > SMALL_BATCH:
            codes = np.asarray(
                pd.Index(self.categories, dtype=object).get_indexer(
                    np.asarray(values, dtype=object)
                )
            )
        else:
            if not isinstance(values, np.ndarray) and hasattr(values, "__arrow_array__"):
                # Arrow-backed strings: one conversion to Python values, not one per value.
                values = values.__arrow_array__().to_pylist()
            codes = np.fromiter(map(lookup.__getitem__, values), np.int64, size)
        if (codes < 0).any():
            codes = self.resolve_missing(codes, values)
            codes = codes[codes >= 0]
        return codes

    def resolve_missing(self, codes: np.ndarray, values: Any) -> np.ndarray:
        """Where ``codes`` is -1: count nulls (they stay -1), send other labels to "unseen"."""
        assert self.categories is not None
        missing = np.flatnonzero(codes < 0)
        labels = np.asarray(values, dtype=object)[missing]
        null = np.asarray(pd.isna(labels), dtype=bool)
        self.nulls += int(null.sum())
        codes = codes.copy()
        codes[missing[~null]] = len(self.categories)
        return codes
