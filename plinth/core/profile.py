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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import pandas as pd

from plinth.errors import PlinthError

BinKind = Literal["numeric", "categorical"]

#: Column kinds a profile understands (the contract's field types); ``text`` is skipped.
NUMERIC_KINDS = frozenset({"numeric", "integer", "boolean", "datetime"})
CATEGORICAL_KINDS = frozenset({"categorical"})
SKIPPED_KINDS = frozenset({"text"})

#: Name of the prediction section and of the top-class probability section.
OUTPUT = "prediction"
CONFIDENCE = "confidence"

# Below this many rows one ``DataFrame.to_numpy()`` beats extracting columns one by one:
# pandas spends ~10 µs building each column Series, more than the arithmetic on 32 rows.
_SMALL_BATCH = 1024

FORMAT_VERSION = 1


def _incompatible(message: str) -> PlinthError:
    return PlinthError(
        message,
        code="profile.incompatible",
        hint="Only profiles built from the same reference (same features and bins) can be "
        "merged or compared; build interval profiles with reference.empty_like().",
        status=500,
    )


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
    _slots: dict[Any, int] | None = field(default=None, init=False, repr=False)

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
        finite = np.isfinite(values)
        x = values[finite]
        self.nulls += int(values.size - x.size)
        idx = np.searchsorted(np.asarray(self.edges), x, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        if self.minimum is not None and self.maximum is not None:
            self.out_of_range += int(np.count_nonzero((x < self.minimum) | (x > self.maximum)))
        shifted = x - self.center
        self.sum += float(shifted.sum())
        self.sum_sq += float(np.dot(shifted, shifted))

    def add_categorical(self, values: np.ndarray) -> None:
        """Fold labels: known ones to their slot, anything else to the unseen slot."""
        assert self.categories is not None
        if values.size <= _SMALL_BATCH:
            if self._slots is None:
                self._slots = {c: i for i, c in enumerate(self.categories)}
            lookup = self._slots
            codes = np.fromiter((lookup.get(v, -1) for v in values), np.int64, values.size)
        else:
            codes = pd.Index(self.categories, dtype=object).get_indexer(values.astype(object))
        missing = codes < 0
        if missing.any():
            null = np.asarray(pd.isna(values[missing]), dtype=bool)
            self.nulls += int(null.sum())
            codes[np.flatnonzero(missing)[~null]] = len(self.categories)
            codes = codes[codes >= 0]
        self.counts += np.bincount(codes, minlength=self.counts.size)


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
        raise PlinthError(
            f"{what} must be one value per row, got an array of shape {array.shape}.",
            code="profile.invalid_outputs",
            hint="Pass the predicted label or value per row, and the top-class probability "
            "per row as confidence.",
            status=500,
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
            raise PlinthError(
                f"bins={self.bins} and max_categories={self.max_categories} must be >= 1.",
                code="profile.invalid_parameter",
                hint="Use bins=10, max_categories=100 unless you have a reason.",
                status=500,
            )
        unknown = sorted(
            k for k in set(kinds.values()) - NUMERIC_KINDS - CATEGORICAL_KINDS - SKIPPED_KINDS
        )
        missing = [c for c in kinds if c not in frame.columns]
        if unknown or missing:
            raise PlinthError(
                f"Cannot profile: unknown kinds {unknown}, columns not in the frame {missing}.",
                code="profile.invalid_kinds",
                hint="Kinds are numeric, integer, boolean, categorical, datetime or text, and "
                "every named column must be in the training frame.",
                status=500,
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
            raise PlinthError(
                "This Profile has no bins yet.",
                code="core.not_fitted",
                hint="Build profiles with Profile.fit(frame, kinds) or Profile.from_dict(...).",
                status=500,
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
        if rows:
            plan = self._plan if self._plan is not None else self._make_plan()
            plan.fold(frame, self.features_)
            self.n_rows_ += rows
        if outputs is not None and self.output_ is not None:
            out = _one_dimensional(outputs, "outputs")
            if self.output_.kind == "numeric":
                self.output_.add_numeric(out.astype(np.float64))
            else:
                self.output_.add_categorical(out)
        if confidence is not None and self.confidence_ is not None:
            self.confidence_.add_numeric(
                _one_dimensional(confidence, "confidence").astype(np.float64)
            )

    def _make_plan(self) -> _Plan:
        self._plan = _Plan(self.features_)
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
            raise PlinthError(
                f"Profile format {data.get('format')!r} is not {FORMAT_VERSION}.",
                code="profile.unsupported_format",
                hint="The profile was written by another Plinth version; refit it.",
                status=500,
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


class _Plan:
    """Precomputed arrays that let one batch update every numeric feature at once."""

    def __init__(self, features: Mapping[str, FeatureBins]) -> None:
        numeric = [b for b in features.values() if b.kind == "numeric"]
        self.numeric = numeric
        self.categorical = [b for b in features.values() if b.kind == "categorical"]
        widths = [len(b.counts) for b in numeric]
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        most = max((len(b.edges or []) for b in numeric), default=0)
        # Edges padded with +inf: "x > inf" is never true, so padding never moves a value.
        self.edges = np.full((len(numeric), max(most, 1)), np.inf)
        for j, b in enumerate(numeric):
            self.edges[j, : len(b.edges or [])] = b.edges or []
        self.low = np.asarray([-np.inf if b.minimum is None else b.minimum for b in numeric])
        self.high = np.asarray([np.inf if b.maximum is None else b.maximum for b in numeric])
        self.center = np.asarray([b.center for b in numeric])

    def fold(self, frame: pd.DataFrame, features: Mapping[str, FeatureBins]) -> None:
        rows = len(frame)
        position = {c: i for i, c in enumerate(frame.columns)}
        matrix = frame.to_numpy() if rows <= _SMALL_BATCH else None
        x = np.empty((rows, len(self.numeric)))
        found = [position.get(b.name) for b in self.numeric]
        # Fast path: every plain numeric column of a small batch converted in one call.
        plain = [
            j
            for j, b in enumerate(self.numeric)
            if found[j] is not None and b.source_kind != "datetime"
        ]
        done: set[int] = set()
        if matrix is not None and plain:
            try:
                x[:, plain] = matrix[:, [found[j] for j in plain]].astype(np.float64)
                done.update(plain)
            except (TypeError, ValueError):
                pass  # some column holds text or pd.NA: convert column by column below
        for j, b in enumerate(self.numeric):
            at = found[j]
            if j in done:
                continue
            if at is None:
                x[:, j] = np.nan
            elif matrix is not None and b.source_kind != "datetime":
                x[:, j] = _object_column_as_float(matrix[:, at])
            else:
                x[:, j] = _numeric_column(frame.iloc[:, at], b.source_kind)
        if self.numeric:
            self._fold_numeric(x)
        for b in self.categorical:
            at = position.get(b.name)
            if at is None:
                b.nulls += rows
            elif matrix is not None:
                b.add_categorical(matrix[:, at])
            else:
                b.add_categorical(frame.iloc[:, at].to_numpy())

    def _fold_numeric(self, x: np.ndarray) -> None:
        finite = np.isfinite(x)
        if x.size * self.edges.shape[1] <= 1 << 16:
            # Small batch: one broadcast compare bins every value of every feature at once;
            # the count of edges strictly below x is the index of its right-closed bin.
            index = (x[:, :, None] > self.edges[None, :, :]).sum(axis=2)
            counts = np.bincount(
                (index + self.offsets[None, :-1])[finite], minlength=int(self.offsets[-1])
            )
        else:
            counts = np.zeros(int(self.offsets[-1]), dtype=np.int64)
            for j, b in enumerate(self.numeric):
                values = x[finite[:, j], j]
                index = np.searchsorted(np.asarray(b.edges), values, side="left")
                counts[self.offsets[j] : self.offsets[j + 1]] = np.bincount(
                    index, minlength=len(b.counts)
                )
        nulls = x.shape[0] - finite.sum(axis=0)
        outside = (((x < self.low) | (x > self.high)) & finite).sum(axis=0)
        shifted = np.where(finite, x - self.center, 0.0)
        sums = shifted.sum(axis=0)
        squares = (shifted * shifted).sum(axis=0)
        for j, b in enumerate(self.numeric):
            b.counts += counts[self.offsets[j] : self.offsets[j + 1]]
            b.nulls += int(nulls[j])
            b.out_of_range += int(outside[j])
            b.sum += float(sums[j])
            b.sum_sq += float(squares[j])
