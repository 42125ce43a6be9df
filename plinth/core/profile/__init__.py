"""Binned feature profiles: the reference fitted on training data, and interval profiles.

A reference profile is fitted once, at registration, on the training features (and the
holdout outputs). An interval profile is the same bins filled with one interval's live
traffic. Monitoring compares the two with the tests in ``plinth.core.drift``, and because a
profile is only counts and running sums, intervals from many replicas merge by addition: the
cost of monitoring is set by the number of bins, never by the number of requests.

``columns`` reads a column's values the way every profile does, ``bins`` holds one
feature's bins (fit, fold, merge, JSON), ``batch`` folds a whole batch into every feature at
once, and ``profile`` puts the features, prediction and confidence together.
"""

from plinth.core.profile.bins import SMALL_BATCH, BinKind, FeatureBins
from plinth.core.profile.columns import (
    CATEGORICAL_KINDS,
    NUMERIC_KINDS,
    SKIPPED_KINDS,
    numeric_column,
)
from plinth.core.profile.profile import CONFIDENCE, FORMAT_VERSION, OUTPUT, Profile

# The names these had when the profile was one module, for code written against it.
_numeric_column = numeric_column
_SMALL_BATCH = SMALL_BATCH

__all__ = [
    "CATEGORICAL_KINDS",
    "CONFIDENCE",
    "FORMAT_VERSION",
    "NUMERIC_KINDS",
    "OUTPUT",
    "SKIPPED_KINDS",
    "SMALL_BATCH",
    "BinKind",
    "FeatureBins",
    "Profile",
    "numeric_column",
]
