"""What each console page shows, gathered from the services the CLI and the API use.

Plain dicts and lists, so a template only formats; every number comes from the same
service call as ``plinth monitor``, ``plinth history`` or ``plinth review`` (the page and
the terminal always agree). These functions block (store reads), so routes run them in a
thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.core.durations import parse_duration
from plinth.errors import PlinthError
from plinth.runtime import Runtime
from plinth.services.views import version_view

log = logging.getLogger("plinth.ui")

#: The model page's window picker.
WINDOWS = ("1h", "24h", "7d", "30d")
#: The home page judges every model over this window.
HOME_WINDOW = "1h"
#: An error rate above this is trouble on the home page.
ERROR_RATE_TROUBLE = 0.01
#: Control charts the model page always draws; a feature's only when it breached (two per
#: feature would bury the page: ``plinth monitor --html`` draws them all).
ALWAYS_CHARTED = ("prediction", "confidence", "latency")


@dataclass
class ModelRow:
    """One line of the home page."""

    name: str
    task: str
    versions: int
    latest_version: int
    serving: int | None
    canary: dict[str, Any] | None
    shadows: list[int]
    requests: int
    rate_per_min: float
    error_rate: float | None
    p99_s: float | None
    drifted: list[str]
    firing: list[dict[str, Any]]
    reviews_open: int
    review_sla_breached: bool
    problem: str | None  # why the report could not be built, if it could not

    @property
    def trouble(self) -> list[str]:
        """Why this model is on top of the list (empty: nothing wrong)."""
        found = [f"alert: {a['rule']}" for a in self.firing]
        if self.drifted:
            found.append(f"drift in {len(self.drifted)} feature(s)")
        if self.error_rate is not None and self.error_rate > ERROR_RATE_TROUBLE:
            found.append(f"error rate {self.error_rate:.1%}")
        if self.review_sla_breached:
            found.append("review queue past its SLA")
        return found


def _serving(runtime: Runtime, name: str) -> int | None:
    if runtime.serving is None:
        return None
    return runtime.serving.router.serving(name)


def models_overview(runtime: Runtime, now: datetime | None = None) -> list[ModelRow]:
    """Every model, trouble first (most reasons, then name)."""
    window = parse_duration(HOME_WINDOW)
    queues = {q.model: q for q in runtime.review_queue.numbers()}
    rows: list[ModelRow] = []
    for summary in runtime.store.list_models():
        name = summary.name
        spec, _ = runtime.deployments.effective(name)
        monitor = runtime.monitor(name)
        firing = [a.to_dict() for a in monitor.rows.open_alerts(name)]
        report: dict[str, Any] = {}
        problem = None
        try:
            report = monitor.report(name, window=window, now=now, label=HOME_WINDOW)
        except PlinthError as exc:
            problem = exc.message
        traffic = report.get("traffic", {})
        drift = report.get("drift") or {}
        queue = queues.get(name)
        requests = int(traffic.get("requests", 0))
        rows.append(
            ModelRow(
                name=name,
                task=summary.task,
                versions=summary.versions,
                latest_version=summary.latest_version,
                serving=_serving(runtime, name),
                canary=None if spec.canary is None else spec.canary.to_dict(),
                shadows=list(spec.shadows),
                requests=requests,
                rate_per_min=requests / (window.total_seconds() / 60),
                error_rate=traffic.get("error_rate"),
                p99_s=report.get("latency", {}).get("p99"),
                drifted=list(drift.get("drifted_features", [])),
                firing=firing,
                reviews_open=0 if queue is None else queue.open,
                review_sla_breached=bool(queue and queue.sla_breached),
                problem=problem,
            )
        )
    rows.sort(key=lambda r: (-len(r.trouble), r.name))
    return rows


def model_page(
    runtime: Runtime, name: str, window: str, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the model page shows for ``window`` (one of ``WINDOWS``)."""
    span = parse_duration(window)
    versions = runtime.store.list_versions(name)
    if not versions:
        runtime.store.get_version(name)  # raises registry.model_not_found with a listing
    spec, live = runtime.deployments.effective(name)
    history = runtime.deployments.history(name)
    serving = _serving(runtime, name)
    report: dict[str, Any] | None = None
    problem = None
    try:
        report = runtime.monitor(name).report(name, window=span, now=now, label=window, detail=True)
    except PlinthError as exc:
        problem = exc.message
    performance: dict[str, Any] | None = None
    try:
        performance = runtime.performance.report(name, window=span, windows=1, end=now)
    except PlinthError as exc:
        log.info("no performance report for %s: %s", name, exc)
    views = [version_view(v) for v in reversed(versions)]
    shown = next((v for v in versions if v.version == (serving or spec.champion)), versions[-1])
    contract = shown.metadata.get("contract", {}).get("fields", [])
    output = shown.metadata.get("output_contract", {})
    drift_rows = []
    if report and report.get("drift"):
        for feature in report["drift"]["features"]:
            best = max(feature["results"], key=lambda r: r.get("score") or 0.0)
            drift_rows.append(
                {
                    "feature": feature["feature"],
                    "kind": feature["kind"],
                    "drifted": feature["drifted"],
                    "method": best["method"],
                    "score": best.get("score"),
                    "p_value": best.get("p_value"),
                    "threshold": best.get("threshold"),
                    "histogram": report["histograms"].get(feature["feature"]),
                }
            )
        drift_rows.sort(key=lambda r: (not r["drifted"], -(r["score"] or 0.0)))
    charts = (report or {}).get("control") or []
    drawn = [c for c in charts if c["breaches"] or c["section"] in ALWAYS_CHARTED]
    drawn.sort(key=lambda c: (not c["breach"], -c["breaches"]))
    queue = [q for q in runtime.review_queue.numbers(name)]
    return {
        "name": name,
        "window": window,
        "windows": WINDOWS,
        "versions": views,
        "serving": serving,
        "spec": spec.to_dict(),
        "live_revision": None if live is None else live.revision,
        "history": [r.to_dict() for r in history],
        "contract": contract,
        "contract_version": shown.version,
        "output_contract": output,
        "report": report,
        "problem": problem,
        "drift_rows": drift_rows,
        "control_drawn": drawn,
        "control_calm": len(charts) - len(drawn),
        "performance": performance,
        "queue": queue[0].to_dict() if queue else None,
    }


def review_queue(runtime: Runtime, model: str | None) -> list[dict[str, Any]]:
    """Open items (pending and claimed), oldest first, each with its SLA state."""
    queue = runtime.review_queue
    sla = queue.sla.total_seconds()
    now = datetime.now(UTC)
    items = [
        *queue.list_items(model=model, status="pending", limit=500),
        *queue.list_items(model=model, status="claimed", limit=500),
    ]
    items.sort(key=lambda i: i["created_at"])
    for item in items:
        age = (now - datetime.fromisoformat(item["created_at"])).total_seconds()
        item["age_s"] = age
        item["sla"] = "breached" if age > sla else "near" if age > 0.75 * sla else "ok"
    return items


def review_case(runtime: Runtime, review_id: str) -> dict[str, Any]:
    """One item with its prediction and context, and the labels a reviewer may pick."""
    item = runtime.review_queue.show(review_id)
    version = runtime.store.get_version(item["model"], item["version"])
    output = version.metadata.get("output_contract", {})
    item["classes"] = [str(c) for c in output.get("classes") or []]
    item["task"] = output.get("task")
    probabilities = (item.get("output") or {}).get("probabilities") or {}
    item["probabilities"] = sorted(
        ((str(k), float(v)) for k, v in probabilities.items()), key=lambda kv: -kv[1]
    )
    return item


def next_pending(runtime: Runtime, model: str | None, after: str | None = None) -> str | None:
    """The oldest pending item (not ``after``), for "resolve and go to the next"."""
    for item in runtime.review_queue.list_items(model=model, status="pending", limit=2):
        if item["id"] != after:
            return str(item["id"])
    return None


def seconds_left(until: str | None) -> float | None:
    if until is None:
        return None
    return (datetime.fromisoformat(until) - datetime.now(UTC)) / timedelta(seconds=1)
