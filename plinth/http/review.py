"""The review queue over HTTP, and what each worker runs for labels and review.

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
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from plinth.core.durations import parse_duration
from plinth.core.review import ReviewPolicy
from plinth.errors import RequestError
from plinth.http.auth import Auth, require_role
from plinth.http.bodies import json_response
from plinth.http.feedback import read_body
from plinth.services.auth import Tokens
from plinth.services.feedback.labels import Feedback
from plinth.services.feedback.performance import Performance
from plinth.services.process import in_thread
from plinth.services.review.policy import policy_source
from plinth.services.review.queue import ReviewQueue
from plinth.services.review.writer import ReviewWriter
from plinth.settings import Settings
from plinth.store import Store

log = logging.getLogger("plinth.review")

router = APIRouter(tags=["review"], dependencies=[Depends(require_role("reviewer"))])


@dataclass
class FeedbackRuntime:
    """The review writer, the gate's policy source and the gauge refresher of one worker."""

    writer: ReviewWriter
    policy: Callable[[str], ReviewPolicy | None]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.writer.close)


def start_feedback(app: FastAPI, store: Store, settings: Settings) -> FeedbackRuntime:
    """Build the services the feedback and review routes use (inside the lifespan)."""
    app.state.feedback_settings = settings
    app.state.feedback = Feedback(store)
    app.state.performance = Performance(store)
    app.state.review = ReviewQueue(
        store,
        lease=timedelta(seconds=settings.review_lease_s),
        sla=timedelta(seconds=settings.review_sla_s),
    )
    app.state.auth = Auth(Tokens(store, settings.tokens), settings.auth_refresh_s)
    writer = ReviewWriter(store, with_context=settings.review_context)
    writer.start()
    runtime = FeedbackRuntime(writer, policy_source(settings))
    runtime.tasks.append(asyncio.create_task(_refresh_gauges(app, store, settings)))
    app.state.feedback_runtime = runtime
    return runtime


async def _refresh_gauges(app: FastAPI, store: Store, settings: Settings) -> None:
    """Keep the performance and queue gauges on /metrics current (latest window)."""
    window = parse_duration(settings.performance_window)
    while True:
        try:
            performance: Performance = app.state.performance
            queue: ReviewQueue = app.state.review
            await in_thread(functools.partial(_publish, performance, queue, store, window))
        except Exception:  # gauges are a convenience; keep serving
            log.exception("could not refresh the performance and review gauges")
        await asyncio.sleep(settings.performance_refresh_s)


def _publish(performance: Performance, queue: ReviewQueue, store: Store, window: Any) -> None:
    for summary in store.list_models():
        performance.publish(summary.name, window)
    queue.publish(queue.numbers())


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
    queue: ReviewQueue = request.app.state.review
    items = await asyncio.to_thread(queue.list_items, model=model, status=status, limit=limit)
    return json_response({"items": items})


@router.get("/v1/review/metrics")
async def queue_metrics(request: Request, model: str | None = None) -> Response:
    """Queue depth, oldest open item's age and median resolution time per model."""
    queue: ReviewQueue = request.app.state.review
    views = await asyncio.to_thread(queue.numbers, model)
    queue.publish(views)
    return json_response({"models": [v.to_dict() for v in views]})


@router.get("/v1/review/{review_id}")
async def show_item(review_id: str, request: Request) -> Response:
    """One item with its prediction and context."""
    queue: ReviewQueue = request.app.state.review
    return json_response(await asyncio.to_thread(queue.show, review_id))


@router.post("/v1/review/{review_id}/claim")
async def claim_item(review_id: str, request: Request) -> Response:
    """Take the item for a lease; 409 if another reviewer holds it."""
    settings: Settings = request.app.state.feedback_settings
    body = await read_body(request, settings.max_body_bytes, optional=True)
    queue: ReviewQueue = request.app.state.review
    return json_response(await asyncio.to_thread(queue.claim, review_id, _reviewer(request, body)))


@router.post("/v1/review/{review_id}/resolve")
async def resolve_item(review_id: str, request: Request) -> Response:
    """Approve or correct; the outcome is stored as a label with source=reviewer."""
    settings: Settings = request.app.state.feedback_settings
    body = await read_body(request, settings.max_body_bytes)
    if not isinstance(body, dict) or set(body) - {"action", "label", "note", "reviewer"}:
        raise RequestError(
            "The body must be an object with 'action' and optionally 'label' and 'note'.",
            code="request.invalid_body",
            status=422,
            hint='Send {"action": "approve"} or {"action": "correct", "label": ..., "note": ...}.',
        )
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise RequestError(
            "'note' must be text.", code="request.invalid_body", status=422, hint="Send a string."
        )
    queue: ReviewQueue = request.app.state.review
    resolved = await asyncio.to_thread(
        queue.resolve,
        review_id,
        _reviewer(request, body),
        str(body.get("action")),
        body.get("label"),
        note,
    )
    return json_response(resolved)
