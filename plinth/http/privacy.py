"""Admin route for the log's privacy duties: forget one subject.

``POST /v1/forget`` with ``{"key": "...", "model": "..."?}`` deletes every prediction
logged with that request key, with its labels, label history and review items, and answers
with the counts (``plinth forget --key K`` does the same from a terminal). The key travels
in the body, not the path, so it never lands in an access log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plinth.errors import InvalidBodyError, Problem
from plinth.errors.request import INVALID_KEY, UNKNOWN_FIELD
from plinth.http.edge import caller_of, json_response, read_json, runtime_of
from plinth.services.privacy import forget

router = APIRouter(tags=["privacy"])

MAX_BODY_BYTES = 64 * 1024
HINT = 'Send {"key": "the subject\'s request key"} and optionally "model": "NAME".'


class ForgetBody(BaseModel):
    """Which subject to forget: its request key, in one model or in every one."""

    key: str = Field(description="The request key the predictions were logged with.")
    model: str | None = Field(default=None, description="Only this model's records.")


class Forgotten(BaseModel):
    """What was deleted, table by table."""

    predictions: int
    labels: int
    label_history: int
    review_items: int


@router.post(
    "/v1/forget",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ForgetBody.model_json_schema()}},
        }
    },
    response_model=Forgotten,
)
async def forget_subject(request: Request) -> Response:
    """Delete every logged prediction, label and review item of one request key (admin)."""
    body = await read_json(request, MAX_BODY_BYTES, hint=HINT, too_large_hint=HINT)
    key, model = _parse(body)
    runtime = runtime_of(request)
    gone = await asyncio.to_thread(
        lambda: forget(
            runtime.store, key, model=model, who=caller_of(request), policies=runtime.policies
        )
    )
    return json_response(
        {
            "predictions": gone.predictions,
            "labels": gone.labels,
            "label_history": gone.label_history,
            "review_items": gone.review_items,
        }
    )


def _parse(body: Any) -> tuple[str, str | None]:
    """``key`` and ``model`` from the body; every problem with it listed at once."""
    if not isinstance(body, dict):
        raise InvalidBodyError("The body must be a JSON object.", hint=HINT)
    problems = []
    key, model = body.get("key"), body.get("model")
    if not isinstance(key, str) or not key:
        problems.append(Problem(INVALID_KEY, "'key' must be a non-empty string", HINT, "key"))
    if model is not None and not isinstance(model, str):
        problems.append(Problem(INVALID_KEY, "'model' must be a string", HINT, "model"))
    for name in sorted(set(body) - {"key", "model"}):
        problems.append(Problem(UNKNOWN_FIELD, f"unknown field {name!r}", HINT, name))
    if problems:
        raise InvalidBodyError("The forget request is not valid.", hint=HINT, problems=problems)
    assert isinstance(key, str)
    return key, model
