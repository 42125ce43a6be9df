"""The core's statistics used wrongly: unfitted objects, mismatched shapes, bad arguments.

Most are our own bugs when they happen in a server (500); the metrics and estimators take
labels from callers, so theirs are a caller's mistake (422).
"""

from __future__ import annotations

from plinth.errors.base import PlinthError


class NotFittedError(PlinthError):
    """A core object's learned state was used before ``fit`` (or ``from_dict``)."""

    code = "core.not_fitted"
    status = 500
    hint = "Call fit(...) or from_dict(...) first."


class InvalidNeighboursInputError(PlinthError):
    """A nearest-neighbour index got rows or parameters it cannot use."""

    code = "neighbours.invalid"
    status = 500
    hint = "Pass rows with the columns and kinds the index was fitted on."


class InvalidAttributionInputError(PlinthError):
    """A feature attribution got a row, reference or parameters it cannot use."""

    code = "attribution.invalid"
    status = 500
    hint = "Pass one row and a reference frame with the model's feature columns."


class InvalidChartInputError(PlinthError):
    """A control chart got a point or parameter it cannot use."""

    code = "control.invalid"
    status = 500
    hint = "Chart finite numbers, and fit the chart on a reference first."


class ProfileError(PlinthError):
    """A reference or interval profile cannot be built, merged or read; ``profile.*`` (500)."""

    status = 500


class IncompatibleProfileError(ProfileError):
    """Two profiles (or stored counts) do not share one reference's features and bins."""

    code = "profile.incompatible"
    hint = (
        "Only profiles built from the same reference (same features and bins) can be "
        "merged or compared; build interval profiles with reference.empty_like()."
    )


class InvalidProfileOutputsError(ProfileError):
    """Outputs given to a profile are not one value per row."""

    code = "profile.invalid_outputs"
    hint = (
        "Pass the predicted label or value per row, and the top-class probability "
        "per row as confidence."
    )


class InvalidProfileParameterError(ProfileError):
    """A profile's bins or max_categories is below 1."""

    code = "profile.invalid_parameter"
    hint = "Use bins=10, max_categories=100 unless you have a reason."


class InvalidProfileKindsError(ProfileError):
    """A profile was asked for unknown kinds or columns the frame does not have."""

    code = "profile.invalid_kinds"
    hint = (
        "Kinds are numeric, integer, boolean, categorical, datetime or text, and "
        "every named column must be in the training frame."
    )


class UnsupportedProfileFormatError(ProfileError):
    """A stored profile was written in another format version."""

    code = "profile.unsupported_format"
    hint = "The profile was written by another Plinth version; refit it."


class DriftError(PlinthError):
    """Two distributions cannot be compared; ``drift.*`` (500)."""

    status = 500


class DriftShapeMismatchError(DriftError):
    """Count vectors (or bins and edges) do not line up."""

    code = "drift.shape_mismatch"
    hint = "Compare counts over the same bins (an interval profile from empty_like())."


class EmptyCountsError(DriftError):
    """One side of a comparison has no values."""

    code = "drift.empty_counts"
    hint = "Skip features with no values in the interval."


class MetricsError(PlinthError):
    """Labels and predictions cannot be scored; ``metrics.*`` (422)."""

    status = 422


class MetricsShapeMismatchError(MetricsError):
    """Predictions, probabilities and labels do not line up."""

    code = "metrics.shape_mismatch"
    hint = "Pass one prediction (or probability row) per labelled row."


class MetricsUnknownLabelError(MetricsError):
    """Labels are not among the model's classes."""

    code = "metrics.unknown_label"
    hint = "Labels must use the same values (and types) as the classes the model predicts."


class NoMetricsDataError(MetricsError):
    """There are no labelled rows (or no classes) to score."""

    code = "metrics.empty"
    hint = "Metrics need at least one label and the model's class list."


class NonFiniteMetricsInputError(MetricsError):
    """Targets or predictions of a regressor are not finite numbers."""

    code = "metrics.non_finite"
    hint = "Drop rows with missing labels before scoring."


class EstimationError(PlinthError):
    """A calibrator or performance estimator got inputs it cannot use; ``estimation.*`` (422)."""

    status = 422


class InvalidEstimationInputError(EstimationError):
    """Bad parameters, shapes or class lists for calibration or estimation."""

    code = "estimation.invalid"
    hint = "Calibrate on the holdout's labels and predicted probabilities, one column per class."


class EstimationUnknownLabelError(EstimationError):
    """Labels are not among the calibrator's classes."""

    code = "estimation.unknown_label"
    hint = "Labels must use the same values (and types) as the model's classes."
