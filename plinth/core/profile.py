"""Binned feature profiles: the reference fitted on training data, and interval profiles.

A reference profile is fitted once, at registration, on the training features (and the
holdout outputs). An interval profile is the same bins filled with one interval's live
traffic. Monitoring compares the two with the tests in ``plinth.core.drift``, and because a
profile is only counts and running sums, intervals from many replicas merge by addition: the
cost of monitoring is set by the number of bins, never by the number of requests.

Numeric features get interior edges at training quantiles and right-closed bins
``(-inf, e0], (e0, e1], ..., (ek, inf)``; categorical features get their known categories plus
one last slot for anything else ("unseen"). Missing and non-finite values are counted apart
as ``nulls`` and never enter a bin.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import pandas as pd

from plinth.errors import (
    IncompatibleProfileError,
    InvalidProfileKindsError,
    InvalidProfileOutputsError,
    InvalidProfileParameterError,
    NotFittedError,
    PlinthError,
    UnsupportedProfileFormatError,
)

BinKind = Literal["numeric", "categorical"]

#: Column kinds a profile understands (the contract's field types); ``text`` is skipped.
NUMERIC_KINDS = frozenset({"numeric", "integer", "boolean", "datetime"})
CATEGORICAL_KINDS = frozenset({"categorical"})
SKIPPED_KINDS = frozenset({"text"})

#: Name of the prediction section and of the top-class probability section.
OUTPUT = "prediction"
CONFIDENCE = "confidence"

# Up to this many labels a dict lookup per value beats building a pandas Index to look
# them up in; above it ``Index.get_indexer`` wins.
_SMALL_BATCH = 1024

FORMAT_VERSION = 1


def _incompatible(message: str) -> PlinthError:
    return IncompatibleProfileError(message)


def _json_scalar(value: Any) -> Any:
    """A category as a JSON-native value, so profiles round-trip through JSON exactly."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


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
            raise _incompatible(f"Feature {self.name!r} has different bins in the two profiles.")

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
                ((int(n), _json_scalar(v)) for v, n in frequency.items()),
                key=lambda item: (-item[0], str(item[1])),
            )
            categories = [v for _, v in ranked[:max_categories]]
        known = [_json_scalar(c) for c in categories]
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
        if size > _SMALL_BATCH:
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


# ---------------------------------------------------------------------- column values


def _datetime_seconds(series: pd.Series) -> np.ndarray:
    """Epoch seconds (UTC); unparseable values and NaT become NaN."""
    if not (
        isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series)
    ):
        series = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps: np.ndarray = series.to_numpy(dtype="datetime64[us]")
    seconds = stamps.astype(np.int64) / 1e6
    seconds[np.isnat(stamps)] = np.nan
    return seconds


def _numeric_column(series: pd.Series, source_kind: str) -> np.ndarray:
    """A column as float64 (booleans 0/1, datetimes epoch seconds); junk becomes NaN."""
    if source_kind == "datetime":
        return _datetime_seconds(series)
    try:
        values: np.ndarray = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values
    except (TypeError, ValueError):
        coerced = pd.to_numeric(series.astype(object), errors="coerce")
        return np.asarray(coerced, dtype=np.float64)


def _object_column_as_float(column: np.ndarray) -> np.ndarray:
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        return _numeric_column(pd.Series(column, dtype=object), "numeric")


def _one_dimensional(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidProfileOutputsError(
            f"{what} must be one value per row, got an array of shape {array.shape}."
        )
    return array


# ---------------------------------------------------------------------- the profile


class Profile:
    """Binned distributions of every input feature, the predictions and their confidence.

    >>> rng = np.random.default_rng(0)
    >>> age, city = rng.normal(40, 10, 1000), rng.choice(["a", "b"], 1000)
    >>> train = pd.DataFrame({"age": age, "city": city})
    >>> kinds = {"age": "numeric", "city": "categorical"}
    >>> reference = Profile.fit(train, kinds, bins=4)
    >>> [round(e, 2) for e in reference.features_["age"].edges]
    [33.09, 39.24, 46.13]
    >>> live = reference.empty_like()
    >>> live.update(pd.DataFrame({"age": [20.0, 41.0, None], "city": ["a", "z", "b"]}))
    >>> live.features_["age"].counts.tolist(), live.features_["age"].nulls
    ([1, 0, 1, 0], 1)
    >>> live.features_["city"].categories, live.features_["city"].counts.tolist()
    (['b', 'a'], [1, 1, 1])
    """

    features_: dict[str, FeatureBins]
    output_: FeatureBins | None
    confidence_: FeatureBins | None
    n_rows_: int

    def __init__(self, bins: int = 10, max_categories: int = 100) -> None:
        self.bins = bins
        self.max_categories = max_categories

    # -------------------------------------------------------------- fitting

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        kinds: Mapping[str, str],
        *,
        bins: int = 10,
        max_categories: int = 100,
        outputs: Any = None,
        output_kind: BinKind = "numeric",
        confidence: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> Profile:
        """Learn bins from training rows (and holdout outputs), then count those rows in.

        ``kinds`` maps column -> numeric | integer | boolean | categorical | datetime | text;
        text columns are skipped. ``outputs`` (predicted value or label per row) and
        ``confidence`` (top-class probability per row) may come from a holdout of another
        length. ``classes`` fixes a classifier's output categories (otherwise the labels
        seen, most frequent first).
        """
        return cls(bins=bins, max_categories=max_categories)._fit(
            frame, kinds, outputs=outputs, output_kind=output_kind,
            confidence=confidence, classes=classes,
        )  # fmt: skip

    def _fit(
        self,
        frame: pd.DataFrame,
        kinds: Mapping[str, str],
        *,
        outputs: Any,
        output_kind: BinKind,
        confidence: Any,
        classes: Sequence[Any] | None,
    ) -> Self:
        if self.bins < 1 or self.max_categories < 1:
            raise InvalidProfileParameterError(
                f"bins={self.bins} and max_categories={self.max_categories} must be >= 1."
            )
        unknown = sorted(
            k for k in set(kinds.values()) - NUMERIC_KINDS - CATEGORICAL_KINDS - SKIPPED_KINDS
        )
        missing = [c for c in kinds if c not in frame.columns]
        if unknown or missing:
            raise InvalidProfileKindsError(
                f"Cannot profile: unknown kinds {unknown}, columns not in the frame {missing}."
            )
        features: dict[str, FeatureBins] = {}
        for name, kind in kinds.items():
            column = frame[name]
            if kind in NUMERIC_KINDS:
                values = _numeric_column(column, kind)
                features[name] = FeatureBins.fit_numeric(
                    name, values, bins=self.bins, source_kind=kind
                )
            elif kind in CATEGORICAL_KINDS:
                features[name] = FeatureBins.fit_categorical(
                    name, column, max_categories=self.max_categories
                )
        self.features_ = features
        self.output_ = None
        self.confidence_ = None
        if outputs is not None:
            out = _one_dimensional(outputs, "outputs")
            if output_kind == "numeric":
                self.output_ = FeatureBins.fit_numeric(
                    OUTPUT, out.astype(np.float64), bins=self.bins, source_kind="numeric"
                )
            else:
                self.output_ = FeatureBins.fit_categorical(
                    OUTPUT, pd.Series(out), max_categories=self.max_categories, categories=classes
                )
        if confidence is not None:
            conf = _one_dimensional(confidence, "confidence").astype(np.float64)
            self.confidence_ = FeatureBins.fit_numeric(
                CONFIDENCE, conf, bins=self.bins, source_kind="numeric"
            )
        self.n_rows_ = 0
        self._plan: _Plan | None = None
        # Counting the training rows through update() guarantees that a reference and an
        # interval profile are filled by exactly the same code.
        self.update(frame, outputs, confidence)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "features_"):
            raise NotFittedError(
                "This Profile has no bins yet.",
                hint="Build profiles with Profile.fit(frame, kinds) or Profile.from_dict(...).",
            )

    @property
    def sections(self) -> list[FeatureBins]:
        """Every section: the input features, then prediction and confidence if present."""
        self._check_fitted()
        extra = [b for b in (self.output_, self.confidence_) if b is not None]
        return [*self.features_.values(), *extra]

    # -------------------------------------------------------------- intervals

    def empty_like(self) -> Profile:
        """The same bins with zero counts: an interval profile waiting for traffic."""
        self._check_fitted()
        empty = Profile(bins=self.bins, max_categories=self.max_categories)
        empty.features_ = {n: b.empty_like() for n, b in self.features_.items()}
        empty.output_ = None if self.output_ is None else self.output_.empty_like()
        empty.confidence_ = None if self.confidence_ is None else self.confidence_.empty_like()
        empty.n_rows_ = 0
        empty._plan = None
        return empty

    def update(self, frame: pd.DataFrame, outputs: Any = None, confidence: Any = None) -> None:
        """Fold one batch in, vectorised across rows and numeric features.

        A column missing from the batch counts as null for every row: it then shows up as
        null-rate drift instead of failing the request that carried it.
        """
        self._check_fitted()
        rows = len(frame)
        out = (
            None
            if outputs is None or self.output_ is None
            else _one_dimensional(outputs, "outputs")
        )
        conf = (
            None
            if confidence is None or self.confidence_ is None
            else _one_dimensional(confidence, "confidence")
        )
        # Outputs of another length (a holdout at fit time) are folded on their own below.
        together_out = out if out is not None and len(out) == rows else None
        together_conf = conf if conf is not None and len(conf) == rows else None
        if rows:
            plan = self._plan
            if plan is None or not plan.intact():
                plan = self._make_plan()
            plan.fold(frame, together_out, together_conf)
            self.n_rows_ += rows
        else:
            together_out = together_conf = None
        if out is not None and together_out is None and self.output_ is not None:
            if self.output_.kind == "numeric":
                self.output_.add_numeric(_object_column_as_float(out))
            else:
                self.output_.add_categorical(out)
        if conf is not None and together_conf is None and self.confidence_ is not None:
            self.confidence_.add_numeric(_object_column_as_float(conf))

    def _make_plan(self) -> _Plan:
        self._plan = _Plan(self.features_, self.output_, self.confidence_)
        return self._plan

    def merge(self, other: Profile) -> Profile:
        """A new profile with counts added; associative and commutative on counts."""
        self._check_fitted()
        other._check_fitted()
        if list(self.features_) != list(other.features_):
            raise _incompatible(
                f"The profiles have different features: {list(self.features_)} "
                f"and {list(other.features_)}."
            )
        merged = self.empty_like()
        merged.features_ = {n: b.merge(other.features_[n]) for n, b in self.features_.items()}
        merged.output_ = _merge_optional(self.output_, other.output_, OUTPUT)
        merged.confidence_ = _merge_optional(self.confidence_, other.confidence_, CONFIDENCE)
        merged.n_rows_ = self.n_rows_ + other.n_rows_
        return merged

    def __add__(self, other: Profile) -> Profile:
        return self.merge(other)

    def __radd__(self, other: object) -> Profile:
        # Lets ``sum(profiles)`` start from 0.
        if other == 0:
            return self.merge(self.empty_like())
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable counts

    # -------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``from_dict(to_dict())`` gives back an equal profile."""
        self._check_fitted()
        return {
            "format": FORMAT_VERSION,
            "bins": self.bins,
            "max_categories": self.max_categories,
            "n_rows": self.n_rows_,
            "features": [b.to_dict() for b in self.features_.values()],
            "output": None if self.output_ is None else self.output_.to_dict(),
            "confidence": None if self.confidence_ is None else self.confidence_.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if data.get("format") != FORMAT_VERSION:
            raise UnsupportedProfileFormatError(
                f"Profile format {data.get('format')!r} is not {FORMAT_VERSION}."
            )
        profile = cls(bins=int(data["bins"]), max_categories=int(data["max_categories"]))
        features = [FeatureBins.from_dict(f) for f in data["features"]]
        profile.features_ = {f.name: f for f in features}
        profile.output_ = None if data["output"] is None else FeatureBins.from_dict(data["output"])
        profile.confidence_ = (
            None if data["confidence"] is None else FeatureBins.from_dict(data["confidence"])
        )
        profile.n_rows_ = int(data["n_rows"])
        profile._plan = None
        return profile

    def __repr__(self) -> str:
        if not hasattr(self, "features_"):
            return f"Profile(bins={self.bins}, max_categories={self.max_categories})"
        return f"Profile({len(self.features_)} features, n_rows={self.n_rows_})"


def _merge_optional(
    mine: FeatureBins | None, theirs: FeatureBins | None, what: str
) -> FeatureBins | None:
    if mine is None and theirs is None:
        return None
    if mine is None or theirs is None:
        raise _incompatible(f"Only one of the profiles has a {what} section.")
    return mine.merge(theirs)


def _frame_blocks(frame: pd.DataFrame) -> list[tuple[Any, np.ndarray]]:
    """The frame's storage blocks: (values, column positions), without copying.

    A block holds one or more columns of one dtype (2-D, one row per column) or a single
    extension array. Reading blocks costs a microsecond; pulling 30 columns out as Series
    costs ~100 times that, more than the arithmetic on a small batch. Falls back to plain
    column access should pandas ever change its internals.
    """
    try:
        return [(b.values, b.mgr_locs.as_array) for b in frame._mgr.blocks]
    except AttributeError:  # pragma: no cover - pandas internals changed
        return [(frame.iloc[:, i].array, np.asarray([i])) for i in range(frame.shape[1])]


class _Plan:
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
        for values, locs in _frame_blocks(frame):
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
            if rows > _SMALL_BATCH or isinstance(column, pd.Categorical):
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
        """One column as float64 the way ``_numeric_column`` reads it; junk becomes NaN."""
        kind = self.numeric[j].source_kind
        if kind != "datetime" and isinstance(column, np.ndarray):
            return _object_column_as_float(column)
        if kind != "datetime":
            try:
                return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
            except (TypeError, ValueError):
                pass
        return _numeric_column(pd.Series(column, copy=False), kind)

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
