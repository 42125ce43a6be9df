"""Retraining over HTTP: queue a job (admin), dry-run one (admin), list jobs, read one.

``POST /v1/models/{name}/retrain`` only queues: the job runs in whichever worker of the
deployment claims it (``plinth serve`` runs jobs by default, or ``plinth worker``), never in
the request. The answer is 202 with the job, or the job already queued or running for the
model (``created: false``): a second request starts nothing.

``?dry_run=true`` is the exception, as ``plinth retrain NAME --dry-run`` is: a question
("would a job pass the gate now?") answered in the request. It builds the training set,
trains in a child process (the policy's time limit and memory cap), gates, and answers 200
with row counts, label coverage and the gate's numbers; it registers nothing and records no
job, so the caller's timeout must allow for the trainer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from plinth.http.auth import require_role
from plinth.http.edge import caller_of, json_response, runtime_of
from plinth.http.schemas import ERROR_RESPONSES, ErrorResponse
from plinth.store.training import JobRow

router = APIRouter(tags=["training"])

RETRAIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The dry run's report, or the job already queued or running "
        "(`created: false`)."
    },
    202: {"description": "The job, queued (`created: true`)."},
    **{status: ERROR_RESPONSES[status] for status in (401, 403, 404)},
    409: {
        "model": ErrorResponse,
        "description": "The model has no [models.NAME.training] section "
        "(`training.not_configured`).",
    },
    422: {
        "model": ErrorResponse,
        "description": "Dry run: no training rows or no holdout (`training.no_data`), or a "
        "`dry_run` that is not a boolean.",
    },
    500: {
        "model": ErrorResponse,
        "description": "Dry run: the trainer failed or ran past its time limit "
        "(`training.trainer_failed`, `training.timeout`).",
    },
}


def job_view(job: JobRow) -> dict[str, Any]:
    """A job as JSON, with the step it is in (``stage``) beside the stored fields."""
    out: dict[str, Any] = {k: getattr(job, k) for k in JobRow.__dataclass_fields__}
    for key in ("created_at", "started_at", "finished_at", "lease_until"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    out["stage"] = job.stage
    return out


@router.post(
    "/v1/models/{name}/retrain",
    dependencies=[Depends(require_role("admin"))],
    responses=RETRAIN_RESPONSES,
)
async def retrain(
    name: str,
    request: Request,
    dry_run: bool = Query(
        False,
        description="Build the training set, train and gate now, in this request; register "
        "nothing and queue no job. The reply has the data summary (rows per source, holdout, "
        "label coverage) and the gate's numbers, and `would`: `register and ship` or `reject`.",
    ),
) -> Response:
    """Queue a training job for ``name`` (it needs ``[models.NAME.training]``), or, with
    ``?dry_run=true``, run the job's steps up to the gate and report them."""
    service = runtime_of(request).retraining
    if dry_run:
        return json_response(await asyncio.to_thread(service.dry_run, name))
    job, created = await asyncio.to_thread(
        lambda: service.request(
            name,
            trigger="manual",
            reason=f"POST /v1/models/{name}/retrain",
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
    """One job: trigger, data summary, the step it is in (``stage``; when each step began in
    ``data.stages``), the gate's numbers, version and outcome."""
    jobs = runtime_of(request).retraining.jobs
    return json_response(job_view(await asyncio.to_thread(jobs.get, job_id)))
