"""OpenAPI schemas of the predict route and of the one error shape every route answers with.

The predict route is plain ASGI (``plinth.http.predict``), so FastAPI never parses its body;
these models exist so the OpenAPI document (``/openapi.json``, ``/docs``) describes the
request and replies as they really are, and a test checks the answers match them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """What ``POST /v1/models/{name}/predict`` reads."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(
        min_length=1,
        description="1 to PLINTH_MAX_RECORDS_PER_REQUEST records, each feature name -> value.",
    )
    key: str | None = Field(
        default=None,
        description="The caller's id for this request: routes the canary stickily and names "
        "it in feedback.",
    )


class Prediction(BaseModel):
    """One record's answer."""

    model_config = ConfigDict(extra="allow")

    prediction_id: str
    prediction: Any
    probabilities: dict[str, float] | None = None
    confidence: float | None = None
    route: str
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class PredictResponse(BaseModel):
    """A 200 from the predict route."""

    model: str
    version: int
    route: str = Field(description="champion, canary or fallback")
    request_id: str
    predictions: list[Prediction]


class ProblemBody(BaseModel):
    """One thing wrong, with its own code (see docs/errors.md)."""

    code: str
    message: str
    hint: str | None = None
    field: str | None = None
    record: int | None = None


class ErrorBody(BaseModel):
    code: str = Field(description="A stable machine code, listed in docs/errors.md.")
    message: str
    hint: str | None = None
    problems: list[ProblemBody] | None = None
    problems_not_shown: int | None = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx of every route: ``{"error": {...}}``."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": why}
    for status, why in (
        (400, "The request is malformed."),
        (401, "No valid API token."),
        (403, "The token's role may not use this route."),
        (404, "The model or version does not exist."),
        (413, "The body or the number of records is over the limit."),
        (422, "The records break the model's input contract (every problem listed)."),
        (429, "Too many failed tokens from this client (Retry-After)."),
        (503, "The model, the store or the server cannot answer now (Retry-After when "
              "overloaded)."),
    )
}  # fmt: skip
