"""Monitoring over HTTP: ``GET /v1/models/{name}/monitor``, the report of one window."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from plinth.core.durations import parse_duration
from plinth.http.edge import runtime_of
from plinth.services.monitoring.report import Baseline

router = APIRouter(tags=["monitoring"])


@router.get("/v1/models/{name}/monitor")
async def monitor_report(
    name: str,
    request: Request,
    window: str = "1h",
    baseline: str = "reference",
    version: int | None = None,
    detail: bool = False,
) -> Response:
    """Drift, latency, error and validation rates, control charts and alerts for a window.

    ``detail=true`` adds every interval's numbers (``series``, each control chart's points)."""
    runtime = runtime_of(request)
    span = parse_duration(window)
    report: dict[str, Any] = await asyncio.to_thread(
        runtime.monitor(name).report,
        name,
        window=span,
        baseline=cast(Baseline, baseline),  # validated by the report
        version=version,
        label=window,
        detail=detail,
    )
    report["performance"] = await asyncio.to_thread(
        runtime.performance.report, name, window=span, windows=1
    )
    return Response(orjson.dumps(report), media_type="application/json")
