"""The prediction log's privacy policy: what it cannot do because of what it did not keep."""

from __future__ import annotations

from plinth.errors.base import PlinthError, problem_code


class ReplayRedactedError(PlinthError):
    """A logged prediction cannot be replayed exactly: the model saw fields that the
    model's log policy redacted or hashed before storage."""

    code = "replay.redacted"
    status = 409
    hint = (
        "The log never kept these values ([models.NAME.log] redact/hash), so the exact "
        "answer cannot be recomputed; replay predictions logged without that policy."
    )


REDACTED = problem_code(
    None,
    "log.redacted",
    "A stored row's field was removed before storage by the model's log policy.",
    "warning",
)
HASHED = problem_code(
    None,
    "log.hashed",
    "A stored row's field is kept as a keyed hash (HMAC-SHA256) by the model's log policy.",
    "warning",
)
