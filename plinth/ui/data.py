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
from plinth.store.training import JobRow

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
#: The model page lists this many of the model's newest training jobs.
JOBS_SHOWN = 10


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
    last_job: dict[str, Any] | None = None  # the newest training job (job_view)

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
        if self.last_job is not None and self.last_job["state"] == "failed":
            found.append("last training job failed")
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
        newest = runtime.retraining.jobs.jobs(name, limit=1)
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
                last_job=job_view(newest[0]) if newest else None,
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
        "jobs": [job_view(j) for j in runtime.retraining.jobs.jobs(name, limit=JOBS_SHOWN)],
        "retrains": runtime.policies.training(name) is not None,
    }


def job_view(job: JobRow, now: datetime | None = None) -> dict[str, Any]:
    """A training job for a page: its fields, its steps with their seconds, how long it
    took, and the gate's key numbers (``gate_summary``)."""
    now = now or datetime.now(UTC)
    view: dict[str, Any] = {k: getattr(job, k) for k in JobRow.__dataclass_fields__}
    view["stage"] = job.stage
    view["stages"] = [
        {"name": name, "at": at, "seconds": ((end or now) - at).total_seconds(), "open": not end}
        for name, at, end in job.stage_times()
    ]
    view["seconds"] = (
        None
        if job.started_at is None
        else ((job.finished_at or now) - job.started_at).total_seconds()
    )
    view["summary"] = gate_summary(job.gate)
    view["age_s"] = (now - (job.finished_at or job.created_at)).total_seconds()
    return view


def gate_summary(gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The verdict in a line: the key metric (RMSE or accuracy) of both models on the same
    holdout rows, the paired test's change and its bound, and whether it proved a win."""
    if not gate:
        return None
    metrics = gate.get("metrics") or {}
    candidate, champion = metrics.get("candidate") or {}, metrics.get("champion") or {}
    key = next((k for k in ("rmse", "accuracy") if k in candidate), None)
    relative = gate.get("relative") or {}
    return {
        "passed": bool(gate.get("passed")),
        "rows": gate.get("rows"),
        "metric": key,
        "candidate": candidate.get(key) if key else None,
        "champion": champion.get(key) if key else None,
        "statistic": relative.get("statistic"),
        "change": relative.get("change"),
        "upper": relative.get("upper"),
        "improved": relative.get("improved"),
    }


def training_job(runtime: Runtime, job_id: str) -> dict[str, Any]:
    """One job for its page, with the model's gate policy and the gate's rows as a table."""
    job = job_view(runtime.retraining.jobs.get(job_id))
    job["gate_rows"] = gate_rows(job["gate"])
    return job


def gate_rows(gate: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The gate's table, row by row, as ``plinth job show`` prints it: each metric of both
    models, the absolute bars, the paired test, the slices and the contract."""
    if not gate:
        return []
    rows: list[dict[str, Any]] = []
    metrics = gate.get("metrics") or {}
    candidate, champion = metrics.get("candidate") or {}, metrics.get("champion") or {}
    for key in sorted(k for k in candidate if k != "errors"):
        rows.append(
            {"check": key, "candidate": candidate.get(key), "champion": champion.get(key),
             "limit": None, "ok": None}
        )  # fmt: skip
    for check in gate.get("absolute") or []:
        rows.append(
            {"check": f"absolute {check['metric']}", "candidate": check["value"],
             "champion": None, "limit": f"{check['op']} {check['bar']:g}", "ok": check["ok"]}
        )  # fmt: skip
    relative = gate.get("relative") or {}
    if relative:
        rows.append(
            {
                "check": f"{relative.get('test')}: {relative.get('statistic')}",
                "candidate": relative.get("change"),
                "champion": None,
                "bound": relative.get("upper"),
                "limit": f"≤ {relative.get('max_regression')}",
                "ok": relative.get("ok"),
            }
        )
        rows.append(
            {
                "check": "proven improvement",
                "candidate": "yes" if relative.get("improved") else "no",
                "champion": None,
                "p": relative.get("p_better"),
                "limit": None,
                "ok": None,
            }
        )
    for s in gate.get("slices") or []:
        rows.append(
            {"check": f"slice {s['column']} = {s['value']} ({s['rows']} rows)",
             "candidate": s["change"], "champion": None, "limit": None, "ok": s["ok"]}
        )  # fmt: skip
    contract = gate.get("contract") or {}
    if contract.get("checked"):
        rows.append(
            {"check": "contract", "candidate": contract.get("summary"), "champion": None,
             "limit": None, "ok": not contract.get("blocks")}
        )  # fmt: skip
    return rows


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
