"""Alerts: rules over the monitoring report, one evaluator across workers, log and webhook.

Every ``alert_interval_s`` one process (whoever holds the ``monitor.alerts`` lease in the
store) builds each model's report over the rule window and checks the rules. A rule that
becomes true opens one alert (firing) and notifies the sinks; while it stays true the same
alert is updated, never duplicated; it resolves only after it has been false for the whole
hold-down period, so a flapping signal is one incident, not ten. A rule with too little
traffic to judge leaves its alert as it is.

Rules come from ``plinth.toml`` (``[monitoring]`` for every model, ``[models.NAME.monitoring]``
for one), read once by ``plinth.config`` and handed here as a ``MonitorPolicy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from plinth.config.policies import AlertRules, MonitorPolicy
from plinth.errors import PlinthError
from plinth.services import telemetry
from plinth.services.feedback.performance import Performance
from plinth.services.monitoring.report import Monitor
from plinth.services.process import in_thread, worker_id
from plinth.services.review.queue import QueueView, ReviewQueue
from plinth.services.rollout.applied import FAILED, live_states
from plinth.services.rollout.deployments import Deployments, Revision
from plinth.store import Store
from plinth.store.monitoring import AlertRow, MonitoringStore
from plinth.store.workers import WorkerState

log = logging.getLogger("plinth.alerts")

LEASE = "monitor.alerts"
RULES = (
    "dataset_drift",
    "feature_drift",
    "control_chart",
    "error_rate",
    "latency_p99",
    "validation_rate",
    "performance_drop",
    "review_sla",
    "deployment_not_applied",
    "remote_budget",
)


# ---------------------------------------------------------------------- sinks


@dataclass(frozen=True)
class AlertEvent:
    """What sinks receive: ``firing`` or ``resolved``, and the alert with its evidence."""

    event: str
    alert: AlertRow

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "alert": self.alert.to_dict()}


Sink = Callable[[AlertEvent], None]


def log_sink(event: AlertEvent) -> None:
    """Every alert state change as one log line."""
    a = event.alert
    level = logging.WARNING if event.event == "firing" else logging.INFO
    log.log(level, "alert %s: %s %s on %s: %s", a.id, event.event, a.rule, a.model, a.summary)


class WebhookSink:
    """JSON POST of each event to ``url`` from its own thread, retried with backoff.

    Delivery never blocks the evaluator: events queue here and go out in order; a failed
    POST (connection error or non-2xx) is retried ``attempts`` times, waiting ``backoff``
    seconds, then twice that, and so on, and is logged if it never succeeds.
    """

    def __init__(
        self, url: str, *, attempts: int = 5, backoff: float = 0.5, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="plinth-webhook", daemon=True)
        self._thread.start()

    def __call__(self, event: AlertEvent) -> None:
        self._queue.put(event)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while (event := self._queue.get()) is not None:
                self._deliver(client, event)

    def _deliver(self, client: httpx.Client, event: AlertEvent) -> None:
        wait = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                reply = client.post(self.url, json=event.to_dict())
                if reply.is_success:
                    self.delivered += 1
                    return
                why = f"HTTP {reply.status_code}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                log.info("webhook attempt %d failed (%s); retrying in %.1fs", attempt, why, wait)
                time.sleep(wait)
                wait *= 2
        self.failed += 1
        log.error("webhook gave up on alert %s after %d attempts", event.alert.id, self.attempts)


# ---------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Condition:
    """One rule's verdict: True (breached), False (fine) or None (too little data)."""

    rule: str
    active: bool | None
    summary: str
    evidence: dict[str, Any]


def conditions(report: Mapping[str, Any], rules: AlertRules) -> list[Condition]:
    """Every enabled rule judged on one report."""
    found: list[Condition] = []
    traffic, latency, drift = report["traffic"], report["latency"], report["drift"]
    rows = 0 if drift is None else int(drift["rows"]["current"])
    enough_rows = rows >= rules.min_records
    requests = int(traffic["requests"])
    enough_requests = requests >= rules.min_requests
    window = {"window": report["window"], "version": report["version"]}
    if rules.dataset_drift:
        share = None if drift is None else drift["share_drifted"]
        active = bool(drift and drift["drifted"]) if enough_rows else None
        found.append(
            Condition(
                "dataset_drift",
                active,
                f"{share or 0:.0%} of input features drifted",
                {**window, "share_drifted": share, "rows": rows},
            )
        )
    if rules.feature_drift:
        drifted = [] if drift is None else drift["drifted_features"]
        results = (
            []
            if drift is None
            else [
                r for f in drift["features"] if f["drifted"] for r in f["results"] if r["drifted"]
            ]
        )
        found.append(
            Condition(
                "feature_drift",
                bool(drifted) if enough_rows else None,
                f"drift in {', '.join(drifted)}" if drifted else "no feature drift",
                {**window, "features": drifted, "results": results, "rows": rows},
            )
        )
    if rules.control_chart:
        watched = [c for c in report["control"] if c["section"] in rules.control_sections]
        breached = [c for c in watched if c["breach"]]
        found.append(
            Condition(
                "control_chart",
                bool(breached) if enough_rows and watched else None,
                "control limits breached: "
                + ", ".join(f"{c['statistic']} of {c['section']}" for c in breached)
                if breached
                else "within control limits",
                {**window, "charts": breached},
            )
        )
    for rule, value, limit, enough in (
        ("error_rate", traffic["error_rate"], rules.error_rate, enough_requests),
        ("latency_p99", latency["p99"], rules.latency_p99_s, enough_requests),
        ("validation_rate", traffic["validation_rate"], rules.validation_rate, enough_requests),
    ):
        if limit is None:
            continue
        active = None if value is None or not enough else value > limit
        unit = "s" if rule == "latency_p99" else ""
        shown = "n/a" if value is None else f"{value:.4g}{unit}"
        found.append(
            Condition(
                rule,
                active,
                f"{rule.replace('_', ' ')} {shown} (limit {limit:g}{unit})",
                {**window, "value": value, "limit": limit, "requests": requests},
            )
        )
    return found


def budget_condition(report: Mapping[str, Any]) -> Condition | None:
    """True while a remote model has spent its spec's ``alert_at`` share of today's budget
    (every worker and replica together); None for a model without a budget. Always on:
    the threshold is the spec's, not a ``plinth.toml`` rule. It resolves after midnight
    UTC, when the day's spend starts again from zero."""
    cost = report.get("cost")
    budget = None if cost is None else cost.get("budget")
    if budget is None:
        return None
    share = float(budget["share"] or 0.0)
    return Condition(
        "remote_budget",
        share >= float(budget["alert_at"]),
        f"spent {budget['spent']:.4g} of the daily budget of {budget['per_day']:g} "
        f"({share:.0%}; alert at {float(budget['alert_at']):.0%})",
        {**budget, "window": report["window"]},
    )


PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


def ground_truth_conditions(
    performance: Mapping[str, Any] | None,
    queue: QueueView | None,
    rules: AlertRules,
) -> list[Condition]:
    """The rules that need labels or people: a performance drop and a review SLA breach."""
    found: list[Condition] = []
    if rules.performance_drop is not None and performance is not None:
        metric = PRIMARY_METRIC.get(str(performance.get("task")), "accuracy")
        entries = performance["windows"][-1]["versions"] if performance["windows"] else []
        entry = max(entries, key=lambda e: e["labelled"], default=None)
        realised = None if entry is None else (entry.get("realised") or {}).get(metric)
        holdout = None if entry is None else entry.get("holdout", {}).get(metric)
        enough = entry is not None and entry["labelled"] >= rules.min_labels
        active = None
        if enough and realised is not None and holdout is not None:
            active = realised < holdout - rules.performance_drop
        found.append(
            Condition(
                "performance_drop",
                active,
                f"{metric} {realised:.4g} vs holdout {holdout:.4g}"
                if realised is not None and holdout is not None
                else f"{metric}: not enough labels yet",
                {
                    "metric": metric,
                    "realised": realised,
                    "holdout": holdout,
                    "limit": rules.performance_drop,
                    "labelled": None if entry is None else entry["labelled"],
                    "version": None if entry is None else entry["version"],
                },
            )
        )
    if rules.review_sla and queue is not None:
        found.append(
            Condition(
                "review_sla",
                queue.sla_breached,
                f"oldest open review item {queue.oldest_age_s or 0:.0f}s old "
                f"(SLA {queue.sla_s:.0f}s, {queue.open} open)",
                queue.to_dict(),
            )
        )
    return found


def deployment_condition(live: Revision | None, states: Sequence[WorkerState]) -> Condition:
    """True while a live worker reports it could not apply ``name``'s live revision (it
    keeps serving an older one); always on, since it means the deployment history lies."""
    if live is None:
        return Condition("deployment_not_applied", False, "never deployed", {})
    failing = [s for s in states if s.state == FAILED and s.revision_id == live.id]
    first = (failing[0].error or {}) if failing else {}
    summary = (
        f"{len(failing)} of {len(states)} live workers cannot apply revision {live.revision}: "
        f"[{first.get('code')}] {first.get('message')}"
        if failing
        else f"every live worker applied revision {live.revision}"
    )
    evidence = {
        "revision": live.revision,
        "workers": [{"worker": s.worker, "replica": s.replica, "error": s.error} for s in failing],
    }
    return Condition("deployment_not_applied", bool(failing), summary, evidence)


class AlertEvaluator:
    """Checks every model's rules and keeps alert state in the store."""

    def __init__(
        self,
        store: Store,
        policy: MonitorPolicy | None = None,
        sinks: Sequence[Sink] = (log_sink,),
        *,
        holder: str | None = None,
        lease_s: float = 60.0,
        review_sla_s: float = 4 * 3600.0,
    ) -> None:
        self.store = store
        self.rows = MonitoringStore(store)
        self.policy = policy or MonitorPolicy()
        self.sinks = list(sinks)
        self.holder = holder or worker_id()
        self.lease_s = lease_s
        self.monitor = Monitor(store)
        self.performance = Performance(store)
        self.queue = ReviewQueue(store, sla=timedelta(seconds=review_sla_s))
        self.deployments = Deployments(store)

    def try_evaluate(self, now: datetime | None = None) -> list[AlertEvent] | None:
        """Evaluate if this process holds (or can take) the lease; None if another does."""
        now = now or datetime.now(UTC)
        if not self.rows.acquire_lease(
            LEASE, self.holder, now, now + timedelta(seconds=self.lease_s)
        ):
            return None
        return self.evaluate(now)

    def release(self) -> None:
        with contextlib.suppress(PlinthError):
            self.rows.release_lease(LEASE, self.holder)

    def evaluate(self, now: datetime | None = None) -> list[AlertEvent]:
        """Judge every registered model now; returns the state changes it made."""
        now = now or datetime.now(UTC)
        events: list[AlertEvent] = []
        for summary in self.store.list_models():
            try:
                events.extend(self.evaluate_model(summary.name, now))
            except PlinthError as exc:
                log.error("could not evaluate alerts for %s: %s", summary.name, exc)
        for event in events:
            for sink in self.sinks:
                try:
                    sink(event)
                except Exception:  # a broken sink must not stop the others
                    log.exception("alert sink %r failed", sink)
        return events

    def evaluate_model(self, name: str, now: datetime) -> list[AlertEvent]:
        rules = self.policy.for_model(name)
        report = self.monitor.report(name, window=rules.window, now=now, drift=rules.drift)
        _export_gauges(report)
        open_alerts = {a.rule: a for a in self.rows.open_alerts(name)}
        events: list[AlertEvent] = []
        performance = (
            self.performance.report(name, window=rules.performance_window, windows=1, end=now,
                                    estimate=False)
            if rules.performance_drop is not None
            else None
        )  # fmt: skip
        queue = next(iter(self.queue.numbers(name)), None) if rules.review_sla else None
        judged = conditions(report, rules) + ground_truth_conditions(performance, queue, rules)
        judged.append(
            deployment_condition(self.deployments.current(name), live_states(self.store, name))
        )
        budget = budget_condition(report)
        if budget is not None:
            judged.append(budget)
        for c in judged:
            alert = open_alerts.get(c.rule)
            if c.active and alert is None:
                fired = self.rows.fire(
                    model=name, version=report["version"], rule=c.rule, key="",
                    summary=c.summary, evidence=c.evidence, at=now,
                )  # fmt: skip
                events.append(AlertEvent("firing", fired))
            elif c.active and alert is not None:
                self.rows.still_firing(alert.id, summary=c.summary, evidence=c.evidence, at=now)
            elif (
                c.active is False
                and alert is not None
                and now - alert.last_true_at >= rules.hold_down
            ):
                events.append(AlertEvent("resolved", self.rows.resolve(alert.id, now)))
        firing = {a.rule for a in self.rows.open_alerts(name)}
        for rule in RULES:
            telemetry.ALERT_FIRING.labels(name, rule).set(1 if rule in firing else 0)
        return events

    async def run(self, interval_s: float) -> None:
        """Evaluate every ``interval_s`` while holding the lease (the app's background task)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await in_thread(self.try_evaluate)
                except PlinthError as exc:
                    log.error("alert evaluation failed: %s", exc)
                except Exception:  # a bug must not stop evaluation for good
                    log.exception("alert evaluation failed")
        finally:
            await in_thread(self.release)


def _export_gauges(report: Mapping[str, Any]) -> None:
    drift = report["drift"]
    if drift is None:
        return
    name, version = report["model"], str(report["version"])
    telemetry.DATASET_DRIFT_SHARE.labels(name, version).set(drift["share_drifted"])
    for feature in drift["features"]:
        telemetry.DRIFT_DETECTED.labels(name, version, feature["feature"]).set(
            1 if feature["drifted"] else 0
        )
        for r in feature["results"]:
            telemetry.DRIFT_SCORE.labels(name, version, r["feature"], r["method"]).set(r["score"])
    for r in drift["output"]:
        telemetry.DRIFT_SCORE.labels(name, version, r["feature"], r["method"]).set(r["score"])
