"""Background work a person asks about: monitoring reports, performance, labels and review."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError, problem_code


class MonitorError(PlinthError):
    """A monitoring report cannot be made as asked; ``monitor.*`` (409)."""

    status = 409


class UnknownBaselineError(MonitorError):
    """The report's baseline is neither reference nor previous."""

    code = "monitor.invalid_baseline"
    status = 422
    hint = "Use reference (the training profile) or previous (the window before)."

    def __init__(self, baseline: str) -> None:
        super().__init__(f"Unknown baseline {baseline!r}.")


class NoReferenceProfileError(MonitorError):
    """The version has no reference profile to compare traffic with."""

    code = "monitor.no_reference"
    hint = "Register the model with its training data to get one."


class NoBaselineTrafficError(MonitorError):
    """The window before the report's window has no traffic to compare with."""

    code = "monitor.no_baseline"
    hint = "Use --baseline reference, or a window with traffic before it."


class PerformanceError(PlinthError):
    """A performance report cannot be made as asked; ``performance.*`` (422)."""

    status = 422


class InvalidWindowError(PerformanceError):
    """The report's window or number of windows is out of range."""

    code = "performance.invalid_window"
    hint = "Use a positive window (1h, 1d, 7d) and a number of windows from 1 up."


class InvalidEndTimeError(PerformanceError):
    """The report's end time is not ISO 8601 with a time zone."""

    code = "performance.invalid_end"
    hint = "Use ISO 8601 with Z."


class ReviewError(PlinthError):
    """The review gate or the review queue refused; ``review.*`` (422)."""

    status = 422


class InvalidReviewPolicyError(ReviewError):
    """A review policy names an unknown measure or a threshold out of its range."""

    code = "review.invalid_policy"
    hint = "Classifiers gate on top_probability or margin; regressors on tree_spread or ood."


class MissingGateInputError(ReviewError):
    """The review gate's measure needs an input it was not given (probabilities, a spread…)."""

    code = "review.missing_input"
    hint = "Pass probabilities= for a classifier's gate, or gate a regressor on tree_spread or ood."


class InvalidGateInputError(ReviewError):
    """An input of the review gate or its out-of-distribution scorer is malformed."""

    code = "review.invalid_input"
    hint = "Pass one row per record, with the columns the scorer was fitted on."


class NoOodReferenceError(ReviewError):
    """The version is gated on ood but has no out-of-distribution reference."""

    code = "review.no_ood_reference"
    status = 500
    hint = (
        "Register the model again (registration stores the reference), or gate it on tree_spread."
    )


class ReviewItemNotFoundError(ReviewError, NotFoundError):
    """No review item has this id."""

    code = "review.not_found"
    status = 404
    hint = "List items with GET /v1/review?status=pending or `plinth review list`."

    def __init__(self, review_id: str) -> None:
        super().__init__(f"no review item {review_id!r}")


class UnknownReviewStatusError(ReviewError):
    """A listing asked for a status that is not pending, claimed or resolved."""

    code = "review.invalid_status"
    hint = "Use status=pending, claimed or resolved."


class UnknownReviewActionError(ReviewError):
    """A resolution's action is neither approve nor correct."""

    code = "review.invalid_action"
    hint = 'Send {"action": "approve"} or {"action": "correct", "label": ...}.'


class InvalidReviewLabelError(ReviewError):
    """A resolution's label does not fit (or is not wanted by) the action."""

    code = "review.invalid_label"
    hint = "The label must fit the version's output contract."


class MissingReviewLabelError(ReviewError):
    """A correction came without the right label."""

    code = "review.missing_label"
    hint = 'Send {"action": "correct", "label": ...}.'


class PredictionPrunedError(ReviewError):
    """The item's prediction was pruned from the log, so there is no answer to approve."""

    code = "review.prediction_pruned"
    status = 409
    hint = 'Resolve with {"action": "correct", "label": ...}.'


class AlreadyResolvedError(ReviewError):
    """The item was already resolved."""

    code = "review.already_resolved"
    status = 409
    hint = "Each item is resolved once; list pending items for the next one."


class ReviewClaimedError(ReviewError):
    """Another reviewer holds the item's lease."""

    code = "review.claimed"
    status = 409
    hint = "Take another pending item; this one frees up if its lease runs out."


class NoLabelStoredError(PlinthError):
    """Every item of a feedback submission failed; each item's own error says why."""

    code = "feedback.all_failed"
    status = 422
    hint = "See the error of each item."

    def __init__(self, count: int) -> None:
        super().__init__(f"None of the {count} labels could be stored.")


def _item(code: str, meaning: str) -> str:
    return problem_code(None, code, meaning, "item outcome")


INVALID_ITEM = _item("feedback.invalid_item", "A label item is not an object of the known fields.")
MISSING_LABEL = _item("feedback.missing_label", "A label item has no label.")
MODEL_REQUIRED = _item("feedback.model_required", "A label by key names no model.")
RESERVED_SOURCE = _item(
    "feedback.reserved_source", "source 'reviewer' is kept for resolved review items."
)
INVALID_TIME = _item("feedback.invalid_time", "A label's time is not ISO 8601 with a zone.")
UNKNOWN_PREDICTION = _item("feedback.unknown_prediction", "No prediction has this id (404).")
MODEL_MISMATCH = _item(
    "feedback.model_mismatch", "The prediction was made by another model than the item names."
)
UNKNOWN_KEY = _item(
    "feedback.unknown_key", "No prediction of the model was requested with this key (404)."
)
AMBIGUOUS_KEY = _item(
    "feedback.ambiguous_key", "The key names a request with several records (409)."
)
INVALID_LABEL = _item(
    "feedback.invalid_label", "The label does not fit the version's output contract."
)
