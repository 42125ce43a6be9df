"""Monitoring: fold served batches into interval profiles, flush them, report on them.

``MonitorCollector`` is the batch observer ``ModelPool`` calls on the scoring thread: it adds
each answered batch to the current interval's profile of that model version (the reference
bins, filled with live counts) and, from the reply path, counts requests, errors, contract
failures and latency in fixed log buckets. Every ``interval_s`` the finished intervals go to
the store as one row per worker; nothing is ever updated, so workers never coordinate.

``roll_up`` keeps a long window cheap to read: once an hour has been over for two hours,
its minute rows (from every worker) are merged into one row for that hour, in the same
table and in one transaction (see ``plinth.store.monitoring``). One worker at a time does it,
under the ``monitor.rollup`` lease, from the collector's flush task.

``Monitor`` builds the report from those rows only (never the prediction log): the rows of
a window are stacked into one matrix and summed, so 30 days cost about 720 hour rows plus
the last hours' minute rows and a few numpy reductions, whatever the traffic was.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from plinth.core.charting import ewma_series
from plinth.core.drift import DriftConfig, dataset_drift
from plinth.core.interval import (
    LatencyHistogram,
    ProfileLayout,
    Section,
    decode_counts_many,
    encode_counts,
    encode_floats,
    histogram_quantile,
    histogram_quantiles,
)
from plinth.core.output import confidence as top_probability
from plinth.core.profile import Profile
from plinth.errors import PlinthError, RequestError
from plinth.services.background import in_thread
from plinth.services.registry import ServedModel
from plinth.services.scoring import JobResult
from plinth.store import Store
from plinth.store.monitoring import ROLLUP_SECONDS, IntervalRow, MonitoringStore
from plinth.store.records import VersionRecord

log = logging.getLogger("plinth.monitoring")

Baseline = Literal["reference", "previous"]


#: Minute rows are rolled up once their hour ended at least this long ago.
ROLLUP_AFTER = timedelta(hours=2)
#: Hours rolled up per transaction, so a backlog never holds the write lock for long.
ROLLUP_CHUNK = timedelta(hours=6)
#: How often each worker looks for hours to roll up (one of them does the work).
ROLLUP_EVERY_S = 300.0
ROLLUP_LEASE = "monitor.rollup"


def worker_id() -> str:
    """Who wrote an interval row: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


def parse_window(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``24h``, ``7d`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if not match:
        raise RequestError(
            f"{text!r} is not a window.",
            code="monitor.invalid_window",
            status=422,
            hint="Write a number and a unit: 90s, 15m, 1h, 24h, 7d.",
        )
    amount, unit = float(match.group(1)), match.group(2)
    unit_name = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours"}
    return timedelta(**{unit_name.get(unit, "days"): amount})


# ---------------------------------------------------------------------- collecting


@dataclass
class _Interval:
    """One interval of one model version, as seen by this worker."""

    profile: Profile | None
    requests: int = 0
    records: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    validation_failures: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def absorb(self, other: _Interval) -> None:
        """Add ``other``'s numbers (used when a failed flush is put back)."""
        if self.profile is not None and other.profile is not None:
            self.profile = self.profile + other.profile
        self.requests += other.requests
        self.records += other.records
        for code, n in other.errors.items():
            self.errors[code] = self.errors.get(code, 0) + n
        self.validation_failures += other.validation_failures
        for name, n in other.problems.items():
            self.problems[name] = self.problems.get(name, 0) + n
        self.latency = self.latency + other.latency


_Key = tuple[str, int, float]  # model, version, interval start (epoch seconds)


class MonitorCollector:
    """Interval profiles and counters for every version this worker serves.

    Thread-safe: batches arrive on each version's scoring thread, replies on the event loop,
    and the flush on yet another thread; one lock guards the open intervals, and it is held
    only while one batch is folded in (a few microseconds per record).
    """

    def __init__(
        self,
        store: Store | None,
        *,
        interval_s: float = 60.0,
        worker: str | None = None,
        clock: Any = time.time,
    ) -> None:
        if interval_s <= 0:
            raise PlinthError(
                f"interval_s={interval_s} must be positive.",
                code="config.invalid",
                status=500,
                hint="Set PLINTH_PROFILE_INTERVAL_S to a number of seconds, e.g. 60.",
            )
        self.store = None if store is None else MonitoringStore(store)
        self.interval_s = float(interval_s)
        self.worker = worker or worker_id()
        self.clock = clock
        self._open: dict[_Key, _Interval] = {}
        self._references: dict[tuple[str, int], Profile | None] = {}
        self._layouts: dict[tuple[str, int], ProfileLayout] = {}
        self._lock = threading.Lock()
        self._next_roll_up = 0.0

    def _start(self, now: float) -> float:
        return math.floor(now / self.interval_s) * self.interval_s

    def _reference(self, model: ServedModel) -> Profile | None:
        key = (model.name, model.version)
        if key not in self._references:
            document = model.record.metadata.get("reference_profile")
            self._references[key] = None if document is None else Profile.from_dict(document)
        return self._references[key]

    def _interval(self, model: ServedModel) -> _Interval:
        """The open interval of ``model`` now (call with the lock held)."""
        key = (model.name, model.version, self._start(self.clock()))
        interval = self._open.get(key)
        if interval is None:
            reference = self._reference(model)
            empty = None if reference is None else reference.empty_like()
            interval = self._open[key] = _Interval(empty)
        return interval

    # -- the observer: called by scoring with the answered rows of one batch -------------

    def __call__(
        self,
        model: ServedModel,
        frame: pd.DataFrame,
        predictions: np.ndarray,
        probabilities: np.ndarray | None,
    ) -> None:
        reference = self._reference(model)
        if reference is None:
            return
        confidence = None if probabilities is None else top_probability(probabilities)
        with self._lock:
            interval = self._interval(model)
            assert interval.profile is not None
            interval.profile.update(frame, predictions, confidence)

    # -- the reply path: one call per request ----------------------------------------------

    def observe_reply(self, model: ServedModel, result: JobResult, seconds: float) -> None:
        """Count one answered request: outcome, records, contract problems, latency."""
        with self._lock:
            interval = self._interval(model)
            interval.requests += 1
            error = result.error
            if error is None:
                interval.records += len(result.answers)
                interval.latency.observe(seconds)
                return
            interval.errors[error.code] = interval.errors.get(error.code, 0) + 1
            if error.code.startswith("contract."):
                interval.validation_failures += 1
                for problem in error.problems:
                    name = problem.field or "(record)"
                    interval.problems[name] = interval.problems.get(name, 0) + 1

    # -- flushing --------------------------------------------------------------------------

    def flush(self, *, final: bool = False) -> int:
        """Write finished intervals (all of them when ``final``); returns rows written.

        A failed write puts the intervals back, so a brief store outage loses nothing.
        """
        current = self._start(self.clock())
        with self._lock:
            done = {k: v for k, v in self._open.items() if final or k[2] < current}
            for key in done:
                del self._open[key]
        if not done or self.store is None:
            return 0
        rows = [self._row(key, interval) for key, interval in done.items()]
        try:
            self.store.insert_intervals(rows)
        except PlinthError:
            log.exception("could not write %d interval profiles; keeping them", len(rows))
            with self._lock:
                for key, interval in done.items():
                    if key in self._open:
                        self._open[key].absorb(interval)
                    else:
                        self._open[key] = interval
            return 0
        return len(rows)

    def _row(self, key: _Key, interval: _Interval) -> IntervalRow:
        name, version, start = key
        counts = sums = None
        if interval.profile is not None:
            layout = self._layouts.get((name, version))
            if layout is None:
                reference = self._references[(name, version)]
                assert reference is not None
                layout = self._layouts[(name, version)] = ProfileLayout(reference)
            ints, floats = layout.flatten(interval.profile)
            counts, sums = encode_counts(ints), encode_floats(floats)
        return IntervalRow(
            model=name,
            version=version,
            start=datetime.fromtimestamp(start, UTC),
            seconds=self.interval_s,
            worker=self.worker,
            requests=interval.requests,
            records=interval.records,
            errors=dict(interval.errors),
            validation_failures=interval.validation_failures,
            problems=dict(interval.problems),
            latency=encode_counts(interval.latency.counts),
            counts=counts,
            sums=sums,
        )

    def maybe_roll_up(self) -> int | None:
        """Roll up old hours if ``ROLLUP_EVERY_S`` has passed since this worker last looked."""
        now = self.clock()
        if self.store is None or now < self._next_roll_up:
            return None
        self._next_roll_up = now + ROLLUP_EVERY_S
        return roll_up(self.store.store, now=datetime.fromtimestamp(now, UTC), holder=self.worker)

    async def run(self) -> None:
        """Flush at every interval boundary until cancelled (the app's background task).

        After a flush the worker also looks for hours to roll up (at most every
        ``ROLLUP_EVERY_S``); the ``monitor.rollup`` lease lets one worker do it.
        """
        while True:
            now = self.clock()
            wait = self._start(now) + self.interval_s - now + min(0.05, self.interval_s / 20)
            await asyncio.sleep(wait)
            try:
                await in_thread(self.flush)
            except Exception:  # keep flushing at the next boundary whatever happened
                log.exception("interval flush failed")
            try:
                await in_thread(self.maybe_roll_up)
            except Exception:  # a failed roll-up is retried at the next look
                log.exception("interval roll-up failed")


def observe_reply(
    observers: Sequence[object], model: ServedModel, result: JobResult, seconds: float
) -> None:
    """Hand one reply to every collector among a batcher's observers (called by serving)."""
    for observer in observers:
        if isinstance(observer, MonitorCollector):
            observer.observe_reply(model, result, seconds)


# ---------------------------------------------------------------------- rolling up


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def roll_up(
    store: Store,
    *,
    now: datetime | None = None,
    after: timedelta = ROLLUP_AFTER,
    holder: str | None = None,
    lease: bool = True,
) -> int | None:
    """Merge the minute rows of every hour that ended at least ``after`` ago, hour by hour.

    Idempotent, and safe beside writers and other roll-ups (each transaction merges only
    the rows it deleted itself). With ``lease`` it first takes the ``monitor.rollup`` lease
    and returns None when another process holds it. Returns the minute rows merged.
    """
    rows = MonitoringStore(store)
    now = now or datetime.now(UTC)
    cutoff = _floor_hour(now - after)
    if rows.oldest_unrolled(cutoff) is None:
        return 0  # the usual case: one cheap read, no lease, no write
    holder = holder or worker_id()
    lease_s = timedelta(minutes=10)
    if lease and not rows.acquire_lease(ROLLUP_LEASE, holder, now, now + lease_s):
        return None
    merged = 0
    try:
        oldest = rows.oldest_unrolled(cutoff)
        while oldest is not None:
            start = _floor_hour(oldest)
            end = min(cutoff, start + ROLLUP_CHUNK)
            merged += rows.roll_up(start, end)
            # Onwards from the end of this chunk, skipping hours without minute rows; rows
            # a roll-up had to leave as they were are not looked at again in this pass.
            oldest = rows.oldest_unrolled(cutoff, since=end)
            if lease:  # a long backlog: keep the lease while working through it
                at = datetime.now(UTC)
                rows.acquire_lease(ROLLUP_LEASE, holder, at, at + lease_s)
    finally:
        if lease:
            rows.release_lease(ROLLUP_LEASE, holder)
    if merged:
        log.info("rolled up %d interval rows older than %s", merged, cutoff.isoformat())
    return merged


@dataclass(frozen=True)
class IntervalPrune:
    """What ``prune_intervals`` did: minute rows merged into hours, rows deleted."""

    rolled_up: int
    minutes_deleted: int
    hours_deleted: int


def prune_intervals(
    store: Store, *, minutes_before: datetime, hours_before: datetime, now: datetime | None = None
) -> IntervalPrune:
    """Retention for interval rows: roll up what can be, then delete old rows.

    Rolling up first means pruning never drops what an hourly row would have kept; minute
    rows older than ``minutes_before`` that are left (none, once roll-ups run) are deleted,
    and hourly roll-ups older than ``hours_before``.
    """
    rolled = roll_up(store, now=now, lease=False) or 0
    minutes, hours = MonitoringStore(store).prune_intervals(
        minutes_before=minutes_before, hours_before=hours_before
    )
    return IntervalPrune(rolled, minutes, hours)


# ---------------------------------------------------------------------- reading back


@dataclass
class WindowData:
    """Every interval of one version in a window, merged across workers, as arrays."""

    starts: list[datetime]
    requests: np.ndarray
    records: np.ndarray
    errors: dict[str, int]
    validation_failures: np.ndarray
    problems: dict[str, int]
    latency: np.ndarray  # intervals x buckets
    ints: np.ndarray  # intervals x layout.int_size, possibly a narrow unsigned type
    floats: np.ndarray
    profile_rows: np.ndarray  # rows folded into the profile, per interval
    resolution_s: float | None = None  # seconds per point (None: no rows)

    @property
    def empty(self) -> bool:
        return not self.starts

    def profile(self, layout: ProfileLayout) -> Profile:
        return layout.inflate(
            self.ints.sum(axis=0, dtype=np.int64),
            self.floats.sum(axis=0),
            int(self.profile_rows.sum()),
        )


def merge_rows(
    rows: Sequence[IntervalRow], layout: ProfileLayout, bucket_s: float | None = None
) -> WindowData:
    """Stack rows and add those of the same interval (workers, replicas) together.

    With ``bucket_s`` rows are added up per bucket of that many seconds instead (the
    report uses hours once a window reaches into rolled-up hours).
    """
    # Rows come ordered by start, so rows of one interval are adjacent: reduceat adds them.
    starts: list[datetime] = []
    at = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        start = r.start if bucket_s is None else _floor(r.start, bucket_s)
        if not starts or start != starts[-1]:
            starts.append(start)
        at[i] = len(starts) - 1
    n = len(starts)
    # Where each interval's last row sits: cumulative sums differenced there add up the
    # rows of one interval exactly (integers) in one pass over the matrix.
    lasts = np.flatnonzero(np.diff(at, append=n)) if rows else np.zeros(0, np.int64)

    def add_up(matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[0] == n:
            return matrix  # one row per interval: nothing to add
        total = np.cumsum(matrix, axis=0, dtype=np.int64)[lasts]
        total[1:] -= total[:-1].copy()
        return total

    ints = np.zeros((n, layout.int_size), dtype=np.int64)
    floats = np.zeros((n, layout.float_size), dtype=np.float64)
    size = LatencyHistogram().counts.size
    latency = add_up(decode_counts_many([r.latency for r in rows], size))
    profiled = [r for r in rows if r.counts is not None and r.sums is not None]
    if profiled:
        stacked = decode_counts_many([r.counts for r in profiled], layout.int_size)  # type: ignore[misc]
        summed = np.frombuffer(b"".join(r.sums for r in profiled), dtype="<f8")  # type: ignore[misc]
        summed = summed.reshape(len(profiled), -1).astype(np.float64)
        layout._check(stacked, summed)
        if len(profiled) == len(rows):
            ints = add_up(stacked)
            floats = (
                summed
                if summed.shape[0] == n
                else np.add.reduceat(summed, np.flatnonzero(np.diff(at, prepend=-1)))
            )
        else:
            where = np.asarray([at[i] for i, r in enumerate(rows) if r.counts is not None])
            np.add.at(ints, where, stacked)
            np.add.at(floats, where, summed)
    requests = np.bincount(at, [r.requests for r in rows], minlength=n).astype(np.int64)
    records = np.bincount(at, [r.records for r in rows], minlength=n).astype(np.int64)
    failures = np.bincount(at, [r.validation_failures for r in rows], minlength=n)
    errors: dict[str, int] = {}
    problems: dict[str, int] = {}
    for r in rows:
        for code, k in r.errors.items():
            errors[code] = errors.get(code, 0) + int(k)
        for name, k in r.problems.items():
            problems[name] = problems.get(name, 0) + int(k)
    # Rows folded into the profile: any section's rows (all sections see every answered row).
    first = layout.sections[0] if layout.sections else None
    profile_rows = (
        ints[:, first.counts].sum(axis=1, dtype=np.int64) + ints[:, first.nulls]
        if first is not None
        else np.zeros(n, dtype=np.int64)
    )
    resolution = bucket_s if bucket_s is not None else max((r.seconds for r in rows), default=None)
    return WindowData(
        starts, requests, records, errors, failures.astype(np.int64), problems, latency,
        ints, floats, profile_rows, resolution,
    )  # fmt: skip


def _floor(at: datetime, seconds: float) -> datetime:
    if seconds == ROLLUP_SECONDS:
        return at.replace(minute=0, second=0, microsecond=0)
    return datetime.fromtimestamp(math.floor(at.timestamp() / seconds) * seconds, UTC)


def _rate(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


def bin_labels(section: Section) -> list[str]:
    """Human labels of a section's bins, for tables and histograms."""
    bins = section.bins
    if bins.kind == "categorical":
        return [str(c) for c in bins.categories or []] + ["(other)"]
    edges = [f"{e:.4g}" for e in bins.edges or []]
    if not edges:
        return ["all"]
    return (
        [f"≤ {edges[0]}"]
        + [f"{a} to {b}" for a, b in itertools.pairwise(edges)]
        + [f"> {edges[-1]}"]
    )


@dataclass(frozen=True)
class ChartSpec:
    """EWMA parameters for the report's control charts."""

    lam: float = 0.2
    L: float = 3.0
    warmup: int = 10  # intervals used to calibrate statistics that have no reference


class Monitor:
    """Builds monitoring reports from interval rows and a version's reference profile."""

    def __init__(
        self,
        store: Store,
        *,
        drift: DriftConfig | None = None,
        charts: ChartSpec | None = None,
    ) -> None:
        self.store = store
        self.rows = MonitoringStore(store)
        self.drift = drift or DriftConfig()
        self.charts = charts or ChartSpec()

    def resolve_version(self, name: str, start: datetime, end: datetime) -> VersionRecord:
        """The newest version with traffic in the window, else the newest registered."""
        versions = self.rows.versions_with_intervals(name, start, end)
        if versions:
            return self.store.get_version(name, versions[-1])
        return self.store.get_version(name)

    def window(
        self, record: VersionRecord, layout: ProfileLayout, start: datetime, end: datetime
    ) -> WindowData:
        """Rows whose interval starts in [start, end), added up per interval.

        A window that reaches into rolled-up hours is added up per hour throughout (the
        recent minute rows into their hours too), so its control charts have one resolution.
        """
        rows = self.rows.read_intervals(record.name, record.version, start, end)
        hourly = any(r.seconds >= ROLLUP_SECONDS for r in rows)
        return merge_rows(rows, layout, ROLLUP_SECONDS if hourly else None)

    def report(
        self,
        name: str,
        *,
        window: timedelta,
        baseline: Baseline = "reference",
        version: int | None = None,
        now: datetime | None = None,
        drift: DriftConfig | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """The JSON report: traffic, latency, drift, control charts and alerts."""
        if baseline not in ("reference", "previous"):
            raise RequestError(
                f"Unknown baseline {baseline!r}.",
                code="monitor.invalid_baseline",
                status=422,
                hint="Use reference (the training profile) or previous (the window before).",
            )
        end = now or datetime.now(UTC)
        start = end - window
        record = (
            self.store.get_version(name, version)
            if version is not None
            else self.resolve_version(name, start, end)
        )
        document = record.metadata.get("reference_profile")
        if document is None:
            raise PlinthError(
                f"{record.ref} has no reference profile.",
                code="monitor.no_reference",
                status=409,
                hint="Register the model with its training data to get one.",
            )
        reference = Profile.from_dict(document)
        layout = ProfileLayout(reference)
        data = self.window(record, layout, start, end)
        body: dict[str, Any] = {
            "model": name,
            "version": record.version,
            "window": {
                "label": label or _label(window),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "seconds": window.total_seconds(),
                "intervals": len(data.starts),
                "resolution_s": data.resolution_s,
            },
            "baseline": baseline,
            **self._traffic(data),
        }
        body["drift"], body["histograms"] = self._drift(
            data, layout, reference, record, baseline, start, window, drift or self.drift
        )
        body["control"] = self._control(data, layout, reference, record)
        body["alerts"] = [a.to_dict() for a in self.rows.list_alerts(name, start)]
        return body

    # -- sections of the report -----------------------------------------------------------

    def _traffic(self, data: WindowData) -> dict[str, Any]:
        requests = int(data.requests.sum())
        failures = int(data.validation_failures.sum())
        errors = sum(data.errors.values())
        merged = data.latency.sum(axis=0)
        quantiles = {f"p{int(q * 100)}": histogram_quantile(merged, q) for q in (0.5, 0.95, 0.99)}
        return {
            "traffic": {
                "requests": requests,
                "records": int(data.records.sum()),
                "errors": dict(sorted(data.errors.items())),
                "error_rate": _rate(errors - failures, requests),
                "validation_failures": failures,
                "validation_rate": _rate(failures, requests),
                "validation_problems": dict(sorted(data.problems.items())),
            },
            "latency": {"count": int(merged.sum()), **quantiles},
        }

    def _drift(
        self,
        data: WindowData,
        layout: ProfileLayout,
        reference: Profile,
        record: VersionRecord,
        baseline: Baseline,
        start: datetime,
        window: timedelta,
        config: DriftConfig,
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        if data.empty or int(data.profile_rows.sum()) == 0:
            return None, {}
        current = data.profile(layout)
        if baseline == "reference":
            base = reference
        else:
            before = self.window(record, layout, start - window, start)
            if before.empty or int(before.profile_rows.sum()) == 0:
                raise PlinthError(
                    "The previous window has no traffic to compare with.",
                    code="monitor.no_baseline",
                    status=409,
                    hint="Use --baseline reference, or a window with traffic before it.",
                )
            base = before.profile(layout)
        result = dataset_drift(base, current, config)
        features: dict[str, dict[str, Any]] = {}
        for r in result.results:
            entry = features.setdefault(
                r.feature,
                {"feature": r.feature, "kind": base.features_[r.feature].source_kind,
                 "drifted": False, "results": []},
            )  # fmt: skip
            entry["results"].append(r.to_dict())
            entry["drifted"] = entry["drifted"] or r.drifted
        histograms: dict[str, Any] = {}
        for name in result.drifted_features:
            section = layout.feature(name)
            ref_bins, cur_bins = base.features_[name], current.features_[name]
            histograms[name] = {
                "labels": [*bin_labels(section), "(null)"],
                "reference": [*ref_bins.counts.tolist(), ref_bins.nulls],
                "current": [*cur_bins.counts.tolist(), cur_bins.nulls],
            }
        body = {
            "share_drifted": result.share_drifted,
            "drifted": result.drifted,
            "drifted_features": result.drifted_features,
            "features": list(features.values()),
            "output": [r.to_dict() for r in result.output],
            "rows": {"reference": base.n_rows_, "current": current.n_rows_},
        }
        return body, histograms

    def _control(
        self, data: WindowData, layout: ProfileLayout, reference: Profile, record: VersionRecord
    ) -> list[dict[str, Any]]:
        """EWMA charts of per-interval statistics, each standardised to unit variance."""
        charts: list[dict[str, Any]] = []
        if data.empty:
            return charts
        spec = self.charts
        ints, floats = data.ints, data.floats
        summary = layout.summarise(ints)

        def add(statistic: str, section: str, z: np.ndarray, raw: np.ndarray) -> None:
            keep = np.isfinite(z)
            if not keep.any():
                return
            series = ewma_series(z[keep], 0.0, 1.0, lam=spec.lam, L=spec.L)
            kept = np.flatnonzero(keep)
            breaches = np.flatnonzero(series.breach)
            charts.append(
                {
                    "statistic": statistic,
                    "section": section,
                    "chart": "ewma",
                    "points": int(keep.sum()),
                    "breaches": int(breaches.size),
                    "first_breach": (
                        data.starts[int(kept[breaches[0]])].isoformat() if breaches.size else None
                    ),
                    "breach": bool(series.breach[-1]),
                    "last": {
                        "value": float(raw[keep][-1]),
                        "z": float(z[keep][-1]),
                        "ewma": float(series.ewma[-1]),
                        "lower": float(series.lower[-1]),
                        "upper": float(series.upper[-1]),
                    },
                }
            )

        for section in layout.sections:
            bins = section.bins
            name = "prediction" if section.key == "output" else section.key.removeprefix("feature:")
            if bins.kind == "numeric" and section.sum is not None:
                mu, sd = bins.mean(), bins.std()
                if mu is not None and sd:
                    n = layout.totals(summary, section.key).astype(np.float64)
                    means = layout.means(summary, floats, section.key)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        z = (means - mu) / (sd / np.sqrt(n))
                    add("mean", name, z, means)
            if section.key.startswith("feature:") and bins.rows > 0:
                # Floor the reference null rate: a never-null column is still chartable.
                p0 = min(max(bins.nulls / bins.rows, 0.5 / bins.rows), 1 - 0.5 / bins.rows)
                rates, rows = layout.null_rates(summary, section.key)
                with np.errstate(invalid="ignore", divide="ignore"):
                    z = (rates - p0) / np.sqrt(p0 * (1 - p0) / rows)
                add("null_rate", name, z, rates)
            if section.key == "output" and bins.kind == "categorical" and bins.total > 0:
                classes = record.metadata.get("output_contract", {}).get("classes") or []
                cats = [str(c) for c in bins.categories or []]
                watched = [str(classes[1])] if len(classes) == 2 else cats
                for label in watched:
                    if label not in cats:
                        continue
                    slot = section.counts.start + cats.index(label)
                    p0 = float(bins.counts[cats.index(label)]) / bins.total
                    if not 0 < p0 < 1:
                        continue
                    n = layout.totals(summary, section.key).astype(np.float64)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        share = ints[:, slot] / n
                        z = (share - p0) / np.sqrt(p0 * (1 - p0) / n)
                    add(f"rate[{label}]", "prediction", z, share)
        p95 = histogram_quantiles(data.latency, 0.95)
        good = np.flatnonzero(np.isfinite(p95) & (p95 > 0))
        if good.size >= spec.warmup + 2:
            logs = np.full(p95.shape, np.nan)
            logs[good] = np.log(p95[good])
            warm = logs[good[: spec.warmup]]
            sd = float(warm.std(ddof=1))
            if sd > 0:
                z = (logs - float(warm.mean())) / sd
                add("p95_latency", "latency", z, p95)
        return charts


def _label(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
