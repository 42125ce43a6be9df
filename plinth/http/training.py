"""Retraining over HTTP: queue a job (admin), list jobs, read one.

``POST /v1/models/{name}/retrain`` only queues: the job runs in whichever worker of the
deployment claims it (``plinth serve`` runs jobs by default, or ``plinth worker``), never in
the request. The answer is 202 with the job, or the job already queued or running for the
model (``created: false``): a second request starts nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from plinth.http.auth import require_role
from plinth.http.edge import caller_of, json_response, runtime_of
from plinth.store.training import JobRow

router = APIRouter(tags=["training"])


def job_view(job: JobRow) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(job, k) for k in JobRow.__dataclass_fields__}
    for key in ("created_at", "started_at", "finished_at", "lease_until"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out


@router.post("/v1/models/{name}/retrain", dependencies=[Depends(require_role("admin"))])
async def retrain(name: str, request: Request) -> Response:
    """Queue a training job for ``name`` (it needs ``[models.NAME.training]``)."""
    service = runtime_of(request).retraining
    job, created = await asyncio.to_thread(
        lambda: service.request(
            name,
            trigger="manual",
            reason="POST /v1/models/{name}/retrain",
            who=caller_of(request),
        )
    )
    return json_response({"created": created, "job": job_view(job)}, 202 if created else 200)


@router.get("/v1/jobs")
async def list_jobs(request: Request, model: str | None = None, limit: int = 50) -> Response:
    """Training jobs, newest first (of one model with ``?model=``)."""
    jobs = runtime_of(request).retraining.jobs
    found = await asyncio.to_thread(jobs.jobs, model, max(1, min(limit, 500)))
    return json_response({"jobs": [job_view(j) for j in found]})


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> Response:
    """One job: trigger, data summary, the gate's numbers, version and outcome."""
    jobs = runtime_of(request).retraining.jobs
    return json_response(job_view(await asyncio.to_thread(jobs.get, job_id)))
