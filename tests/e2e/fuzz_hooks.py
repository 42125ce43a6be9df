"""Schemathesis hooks for tests/e2e/test_fuzz_api.py: the error-shape check."""

from __future__ import annotations

from typing import Any

import schemathesis

from plinth.http.schemas import ErrorResponse


@schemathesis.check
def plinth_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx is ``{"error": {"code", "message", ...}}`` with a request id."""
    if response.status_code < 400:
        return
    parsed = ErrorResponse.model_validate(response.json())
    if not (parsed.error.code and parsed.error.message and parsed.error.request_id):
        raise AssertionError(f"error without code, message or request id: {response.text}")
