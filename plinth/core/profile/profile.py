"""The profile: binned distributions of every input feature, the predictions and confidence.

Fitted once on training features (and holdout outputs) as a reference, then copied empty
and filled with one interval's live traffic; ``+`` adds counts and ``to_dict`` / ``from_dict``
round-trip through JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from plinth.core.profile.batch import BatchPlan
from plinth.core.profile.bins import BinKind, FeatureBins
from plinth.core.profile.columns import (
    CATEGORICAL_KINDS,
    NUMERIC_KINDS,
    SKIPPED_KINDS,
    numeric_column,
    object_column_as_float,
    one_dimensional,
)
from plinth.errors import (
    IncompatibleProfileError,
    InvalidProfileKindsError,
    InvalidProfileParameterError,
    NotFittedError,
    UnsupportedProfileFormatError,
)

#: Name of the prediction section and of the top-class probability section.
OUTPUT = "prediction"
CONFIDENCE = "confidence"

FORMAT_VERSION = 1


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
                values = numeric_column(column, kind)
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
            out = one_dimensional(outputs, "outputs")
            if output_kind == "numeric":
                self.output_ = FeatureBins.fit_numeric(
                    OUTPUT, out.astype(np.float64), bins=self.bins, source_kind="numeric"
                )
            else:
                self.output_ = FeatureBins.fit_categorical(
                    OUTPUT, pd.Series(out), max_categories=self.max_categories, categories=classes
                )
        if confidence is not None:
            conf = one_dimensional(confidence, "confidence").astype(np.float64)
            self.confidence_ = FeatureBins.fit_numeric(
                CONFIDENCE, conf, bins=self.bins, source_kind="numeric"
            )
        self.n_rows_ = 0
        self._plan: BatchPlan | None = None
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
            None if outputs is None or self.output_ is None else one_dimensional(outputs, "outputs")
        )
        conf = (
            None
            if confidence is None or self.confidence_ is None
            else one_dimensional(confidence, "confidence")
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
                self.output_.add_numeric(object_column_as_float(out))
            else:
                self.output_.add_categorical(out)
        if conf is not None and together_conf is None and self.confidence_ is not None:
            self.confidence_.add_numeric(object_column_as_float(conf))

    def _make_plan(self) -> BatchPlan:
        self._plan = BatchPlan(self.features_, self.output_, self.confidence_)
        return self._plan

    def merge(self, other: Profile) -> Profile:
        """A new profile with counts added; associative and commutative on counts."""
        self._check_fitted()
        other._check_fitted()
        if list(self.features_) != list(other.features_):
            raise IncompatibleProfileError(
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
        raise IncompatibleProfileError(f"Only one of the profiles has a {what} section.")
    return mine.merge(theirs)
