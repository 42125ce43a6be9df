"""Schemathesis hooks for tests/e2e/test_fuzz_api.py: the error-shape check."""

from __future__ import annotations

from typing import Any

import schemathesis
from pydantic import ValidationError

from plinth.http.schemas import ErrorResponse


@schemathesis.check
def plinth_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx has its documented shape: ``{"error": {"code", "message", ...,
    "request_id"}}``, and under ``/v2`` the Open Inference Protocol's ``{"error": "..."}``."""
    if response.status_code < 400:
        return
    body = response.json()
    path = str(case.path)
    if path == "/v2" or path.startswith("/v2/"):
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
            raise AssertionError(f"not the Open Inference Protocol's error shape: {body!r}")
        return
    try:
        parsed = ErrorResponse.model_validate(body)
    except ValidationError as exc:
        raise AssertionError(f"not Plinth's error shape: {body!r} ({exc})") from exc
    if not (parsed.error.code and parsed.error.message and parsed.error.request_id):
        raise AssertionError(f"error without code, message or request id: {body!r}")
