"""Labels and live performance over HTTP: ``POST /v1/feedback`` and
``GET /v1/models/{name}/performance``.

``POST /v1/feedback`` takes one item, a list of items, or ``{"model": ..., "items": [...]}``.
Each item is ``{prediction_id | key, label, source?, time?, model?}``. The reply lists an
outcome per item, in order: status 201 (stored), 200 (replaced an earlier label) or a
4xx with an error (404 unknown prediction or key, 409 ambiguous key, 422 invalid item or
label). Valid items are stored even when others fail: the response is 200 whenever at
least one item was stored (a 207-style body), and 422 only when every item failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from plinth.core.durations import parse_duration
from plinth.errors import (
    EmptyRequestError,
    InvalidBodyError,
    InvalidEndTimeError,
    NoLabelStoredError,
    TooManyRecordsError,
)
from plinth.http.auth import require_role
from plinth.http.edge import json_response, read_json, runtime_of

router = APIRouter(tags=["feedback"])

_HINT = 'Send {"items": [{"prediction_id": "...", "label": ...}]} or one such item.'


async def read_body(request: Request, max_bytes: int, *, optional: bool = False) -> Any:
    """The JSON body of a feedback or review route (None for an empty optional one)."""
    return await read_json(
        request, max_bytes, hint=_HINT, too_large_hint="Send fewer items per request.",
        optional=optional,
    )  # fmt: skip


def _items(payload: Any, limit: int) -> tuple[list[Any], str | None]:
    model: str | None = None
    if isinstance(payload, dict) and "items" in payload:
        unknown = sorted(set(payload) - {"items", "model"})
        if unknown or not isinstance(payload["items"], list):
            raise InvalidBodyError(
                "The body must hold an 'items' list (and optionally 'model').",
                hint=_HINT,
            )
        items, model = payload["items"], payload.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidBodyError("'model' must be a string.", hint=_HINT)
    elif isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict):
        items = [payload]
    else:
        raise InvalidBodyError(
            "The body must be a JSON object or list.",
            hint=_HINT,
        )
    if not items:
        raise EmptyRequestError("No items to store.", hint=_HINT)
    if len(items) > limit:
        raise TooManyRecordsError(
            len(items),
            limit,
            noun="items",
            hint="Split the labels over several requests or use `plinth feedback --labels`.",
        )
    return items, model


@router.post("/v1/feedback", dependencies=[Depends(require_role("predict"))])
async def post_feedback(request: Request) -> Response:
    """Store labels for logged predictions; one outcome per item (see the module doc)."""
    runtime = runtime_of(request)
    settings = runtime.settings
    payload = await read_body(request, settings.max_body_bytes)
    items, model = _items(payload, settings.max_records_per_request)
    feedback = runtime.feedback
    result = await asyncio.to_thread(feedback.ingest, items, model=model)
    body = result.to_dict()
    if result.failed == len(result.items):
        error = NoLabelStoredError(len(items))
        body["error"] = error.to_dict()["error"]
        return json_response(body, error.status)
    return json_response(body)


@router.get(
    "/v1/models/{name}/performance",
    dependencies=[Depends(require_role("predict", "reviewer"))],
)
async def get_performance(
    name: str,
    request: Request,
    window: str = "1d",
    windows: int = 7,
    version: int | None = None,
    end: str | None = None,
) -> Response:
    """Realised (from labels) and estimated (from probabilities) performance per window of
    prediction time, per version, with label coverage, label delay and holdout metrics."""
    from plinth.services.feedback.labels import parse_time

    performance = runtime_of(request).performance
    until = None
    if end is not None:
        try:
            until = parse_time(end)
        except ValueError as exc:
            raise InvalidEndTimeError(str(exc)) from exc
    report = await asyncio.to_thread(
        performance.report,
        name,
        window=parse_duration(window),
        windows=windows,
        version=version,
        end=until,
    )
    report["window"] = window
    return json_response(report)
