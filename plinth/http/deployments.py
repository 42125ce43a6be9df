"""Admin routes for rollout: read and change a model's deployment, see its history.

Each change is written to the store and this worker applies it at once; the other workers
(and replicas) pick it up from the store's change counter within a poll interval.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plinth.services.deployments import Deployments, parse_fallback

router = APIRouter(prefix="/v1/deployments/{name}", tags=["deployments"])


class DeployBody(BaseModel):
    """``plinth deploy`` as JSON; omitted fields keep the live spec's values."""

    version: int
    canary: float | None = Field(default=None, description="Make VERSION the canary at this %.")
    shadows: list[int] | None = None
    fallback: list[int | str] | None = None
    deadline_ms: int | None = None
    analysis: dict[str, Any] | None = None
    reason: str = ""
    who: str | None = None


class PromoteBody(BaseModel):
    reason: str = ""
    who: str | None = None


class RollbackBody(BaseModel):
    to: int | None = Field(default=None, description="Revision to return to; default previous.")
    reason: str = ""
    who: str | None = None


def _service(request: Request) -> Deployments:
    return Deployments(request.app.state.store)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _applied(request: Request) -> None:
    # Read-your-writes on this worker; the others poll.
    await request.app.state.router.refresh()


@router.get("")
async def get_deployment(name: str, request: Request) -> Response:
    """The live spec and revision (revision null: never deployed, newest version serves)."""
    service = _service(request)
    spec, revision = await asyncio.to_thread(service.effective, name)
    return _json(
        {
            "name": name,
            "revision": None if revision is None else revision.revision,
            "spec": spec.to_dict(),
            "serving": request.app.state.router.serving(name),
        }
    )


@router.post("")
async def deploy(name: str, body: DeployBody, request: Request) -> Response:
    """Deploy ``version`` as champion (or as canary with ``canary``); a new revision."""
    service = _service(request)
    revision = await asyncio.to_thread(
        lambda: service.deploy(
            name,
            body.version,
            canary=body.canary,
            shadows=body.shadows,
            fallback=None if body.fallback is None else parse_fallback(body.fallback),
            deadline_ms=body.deadline_ms,
            analysis=body.analysis,
            reason=body.reason,
            who=body.who or "http",
        )
    )
    await _applied(request)
    return _json(revision.to_dict(), 201)


@router.post("/promote")
async def promote(name: str, request: Request, body: PromoteBody | None = None) -> Response:
    """The canary becomes champion; a new revision."""
    body = body or PromoteBody()
    service = _service(request)
    revision = await asyncio.to_thread(
        lambda: service.promote(name, reason=body.reason, who=body.who or "http")
    )
    await _applied(request)
    return _json(revision.to_dict(), 201)


@router.post("/rollback")
async def rollback(name: str, request: Request, body: RollbackBody | None = None) -> Response:
    """Serve an earlier revision's spec again (default: the one before the live one)."""
    body = body or RollbackBody()
    service = _service(request)
    revision = await asyncio.to_thread(
        lambda: service.rollback(name, to=body.to, reason=body.reason, who=body.who or "http")
    )
    await _applied(request)
    return _json(revision.to_dict(), 201)


@router.get("/history")
async def history(name: str, request: Request) -> Response:
    """Every revision, newest first, with who, when, why and any canary-analysis evidence."""
    service = _service(request)
    revisions = await asyncio.to_thread(service.history, name)
    return _json({"name": name, "revisions": [r.to_dict() for r in revisions]})
