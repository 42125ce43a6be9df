"""The review queue over HTTP.

Routes (reviewer or admin token once tokens exist):

- ``GET /v1/review?model=...&status=pending`` — items, oldest first;
- ``GET /v1/review/metrics`` — queue depth, oldest open age, median resolution time;
- ``GET /v1/review/{id}`` — one item with its input, prediction, probabilities and
  context (attribution, nearest training rows and resolved reviews);
- ``POST /v1/review/{id}/claim`` — a lease (``PLINTH_REVIEW_LEASE_S``, 5 minutes);
  another reviewer gets 409 until it ends;
- ``POST /v1/review/{id}/resolve`` ``{"action": "approve" | "correct", "label"?, "note"?}``
  — stored as a label with ``source=reviewer``; a second resolve gets 409.

The reviewer's name is the ``reviewer`` field of the body, else the token's name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from plinth.errors import InvalidBodyError
from plinth.http.auth import require_role
from plinth.http.edge import json_response, runtime_of
from plinth.http.feedback import read_body

log = logging.getLogger("plinth.review")

router = APIRouter(tags=["review"], dependencies=[Depends(require_role("reviewer"))])


def _reviewer(request: Request, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("reviewer"), str) and body["reviewer"]:
        return str(body["reviewer"])[:64]
    name = getattr(request.state, "token_name", None)
    return str(name) if name else "anonymous"


@router.get("/v1/review")
async def list_items(
    request: Request, model: str | None = None, status: str | None = "pending", limit: int = 100
) -> Response:
    """Review items, oldest first (``status`` pending, claimed or resolved)."""
    queue = runtime_of(request).review_queue
    items = await asyncio.to_thread(queue.list_items, model=model, status=status, limit=limit)
    return json_response({"items": items})


@router.get("/v1/review/metrics")
async def queue_metrics(request: Request, model: str | None = None) -> Response:
    """Queue depth, oldest open item's age and median resolution time per model."""
    queue = runtime_of(request).review_queue
    views = await asyncio.to_thread(queue.numbers, model)
    queue.publish(views)
    return json_response({"models": [v.to_dict() for v in views]})


@router.get("/v1/review/{review_id}")
async def show_item(review_id: str, request: Request) -> Response:
    """One item with its prediction and context."""
    queue = runtime_of(request).review_queue
    return json_response(await asyncio.to_thread(queue.show, review_id))


@router.post("/v1/review/{review_id}/claim")
async def claim_item(review_id: str, request: Request) -> Response:
    """Take the item for a lease; 409 if another reviewer holds it."""
    settings = runtime_of(request).settings
    body = await read_body(request, settings.max_body_bytes, optional=True)
    queue = runtime_of(request).review_queue
    return json_response(await asyncio.to_thread(queue.claim, review_id, _reviewer(request, body)))


@router.post("/v1/review/{review_id}/resolve")
async def resolve_item(review_id: str, request: Request) -> Response:
    """Approve or correct; the outcome is stored as a label with source=reviewer."""
    settings = runtime_of(request).settings
    body = await read_body(request, settings.max_body_bytes)
    if not isinstance(body, dict) or set(body) - {"action", "label", "note", "reviewer"}:
        raise InvalidBodyError(
            "The body must be an object with 'action' and optionally 'label' and 'note'.",
            hint='Send {"action": "approve"} or {"action": "correct", "label": ..., "note": ...}.',
        )
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise InvalidBodyError("'note' must be text.", hint="Send a string.")
    queue = runtime_of(request).review_queue
    resolved = await asyncio.to_thread(
        queue.resolve,
        review_id,
        _reviewer(request, body),
        str(body.get("action")),
        body.get("label"),
        note,
    )
    return json_response(resolved)
