"""Collecting: fold served batches into interval profiles and flush them to the store.

``MonitorCollector`` is the batch observer ``ModelPool`` calls on the scoring thread: it adds
each answered batch to the current interval's profile of that model version (the reference
bins, filled with live counts) and, from the reply path, counts requests, errors, contract
failures and latency in fixed log buckets. Every ``interval_s`` the finished intervals go to
the store as one row per worker; nothing is ever updated, so workers never coordinate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.interval import (
    LatencyHistogram,
    ProfileLayout,
    Usage,
    encode_counts,
    encode_floats,
)
from plinth.core.output import confidence as top_probability
from plinth.core.profile import Profile
from plinth.errors import ContractError, InvalidConfigError, PlinthError
from plinth.services.monitoring.rollup import ROLLUP_EVERY_S, roll_up
from plinth.services.process import in_thread, worker_id
from plinth.services.registry.versions import ServedModel
from plinth.services.serving.scoring import JobResult
from plinth.store import Store
from plinth.store.monitoring import IntervalRow, MonitoringStore

log = logging.getLogger("plinth.monitoring")


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
    usage: Usage | None = None  # a remote model's calls, tokens and cost

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
        if other.usage is not None:
            self.usage = other.usage if self.usage is None else self.usage + other.usage


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
            raise InvalidConfigError(
                f"interval_s={interval_s} must be positive.",
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

    # -- the reply path: one call per answered batch --------------------------------------

    def observe_reply(self, model: ServedModel, result: JobResult, seconds: float) -> None:
        """Count one answered request: outcome, records, contract problems, latency and,
        for a remote model, the calls, tokens and cost it paid."""
        self.observe_replies(model, [(result, seconds)])

    def observe_replies(
        self, model: ServedModel, replies: Sequence[tuple[JobResult, float]]
    ) -> None:
        """Count the answered requests of one batch, each with its seconds since arrival:
        one lock and one interval lookup for the batch. A remote model's calls are counted
        with what they paid (a reply that broke the schema was paid for too)."""
        latencies: list[float] = []
        remote = model.record.flavor == "remote"
        with self._lock:
            interval = self._interval(model)
            interval.requests += len(replies)
            for result, seconds in replies:
                error = result.error
                if remote:
                    paid = (
                        [a.get("remote") for a in result.answers]
                        if error is None
                        else [getattr(error, "details", None)]
                    )
                    for details in paid:
                        if isinstance(details, dict):
                            if interval.usage is None:
                                interval.usage = Usage()
                            interval.usage.observe(details)
                if error is None:
                    interval.records += len(result.answers)
                    latencies.append(seconds)
                    continue
                interval.errors[error.code] = interval.errors.get(error.code, 0) + 1
                if isinstance(error, ContractError):
                    interval.validation_failures += 1
                    for problem in error.problems:
                        name = problem.field or "(record)"
                        interval.problems[name] = interval.problems.get(name, 0) + 1
            if latencies:
                interval.latency.observe_many(latencies)

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
            usage=None if interval.usage is None else interval.usage.to_dict(),
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
