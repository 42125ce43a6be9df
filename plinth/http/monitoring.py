"""Monitoring at the HTTP edge: the report route and the serve-time background tasks.

``start_monitoring`` runs in the app's lifespan: it creates the collector the model pool
feeds, flushes interval profiles at every interval boundary, and (when enabled) runs the
alert evaluator, which takes a lease in the store so one worker evaluates at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from plinth.config import read_plinth_toml
from plinth.core.durations import parse_duration
from plinth.services.feedback.performance import Performance
from plinth.services.monitoring.alerts import (
    AlertEvaluator,
    MonitorPolicy,
    Sink,
    WebhookSink,
    log_sink,
)
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Baseline, Monitor
from plinth.settings import Settings
from plinth.store import Store

log = logging.getLogger("plinth.monitoring")

router = APIRouter(tags=["monitoring"])


def read_policy(path: Path) -> MonitorPolicy:
    """Alert rules from plinth.toml; the defaults when the file does not exist."""
    return MonitorPolicy.from_mapping(read_plinth_toml(path))


@dataclass
class MonitoringRuntime:
    """What one worker runs for monitoring, and how to stop it cleanly."""

    collector: MonitorCollector
    policy: MonitorPolicy
    evaluator: AlertEvaluator | None = None
    webhook: WebhookSink | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.collector.flush, final=True)
        if self.webhook is not None:
            await asyncio.to_thread(self.webhook.close)


def start_monitoring(app: FastAPI, store: Store, settings: Settings) -> MonitoringRuntime:
    """Create the collector and start the flush and alert tasks (inside the lifespan)."""
    policy = read_policy(settings.monitoring_file)
    runtime = MonitoringRuntime(
        MonitorCollector(store, interval_s=settings.profile_interval_s), policy
    )
    runtime.tasks.append(asyncio.create_task(runtime.collector.run()))
    if settings.alerts_enabled:
        sinks: list[Sink] = [log_sink]
        if settings.webhook_url:
            runtime.webhook = WebhookSink(settings.webhook_url)
            sinks.append(runtime.webhook)
        runtime.evaluator = AlertEvaluator(
            store,
            policy,
            sinks,
            lease_s=max(3 * settings.alert_interval_s, 5.0),
            review_sla_s=settings.review_sla_s,
        )
        runtime.tasks.append(asyncio.create_task(runtime.evaluator.run(settings.alert_interval_s)))
    app.state.monitoring = runtime
    return runtime


@router.get("/v1/models/{name}/monitor")
async def monitor_report(
    name: str,
    request: Request,
    window: str = "1h",
    baseline: str = "reference",
    version: int | None = None,
) -> Response:
    """Drift, latency, error and validation rates, control charts and alerts for a window."""
    runtime: MonitoringRuntime = request.app.state.monitoring
    store: Store = request.app.state.store
    rules = runtime.policy.for_model(name)
    report: dict[str, Any] = await asyncio.to_thread(
        Monitor(store, drift=rules.drift).report,
        name,
        window=parse_duration(window),
        baseline=cast(Baseline, baseline),  # validated by the report
        version=version,
        label=window,
    )
    report["performance"] = await asyncio.to_thread(
        Performance(store).report, name, window=parse_duration(window), windows=1
    )
    return Response(orjson.dumps(report), media_type="application/json")
