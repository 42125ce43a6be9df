"""An adaptive micro-batcher per model version.

One scoring thread per version takes everything that queued up while the previous batch
was running (up to ``max_batch_records``). Under load it may also wait a little for more
records, when the cost it has learned for this model says the wait pays
(``plinth.core.batching``): never at light load, so a lone request goes straight through
and nothing lingers after a burst; under load the batch grows, so the model's per-call
cost is shared. The scoring thread commits the batch's log rows itself before the callers
are answered (``LogWriter.write``): the batch is the log's group commit.

Admission (``admit``) is the batcher's front door: a request that would wait behind more
records than ``max_queue_records``, or behind a queue whose learned cost outlasts the
request's deadline, is refused at once with ``server.overloaded`` instead of queued to
time out. A request to an empty queue is always admitted: a slow model is the deadline's
and the fallback chain's business, not overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from plinth.core.batching import CallCost, expected_wait, wait_budget
from plinth.errors import (
    ContractError,
    DeadlineExceededError,
    ModelError,
    OverloadedError,
    PlinthError,
    ScoringFailedError,
    StoreWriteError,
)
from plinth.services import telemetry
from plinth.services.registry.versions import ServedModel
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.review_gate import ReviewSink
from plinth.services.serving.scoring import (
    BatchObserver,
    Job,
    JobResult,
    ReplyObserver,
    score,
)
from plinth.services.tracing import StageTimes

log = logging.getLogger("plinth.batcher")

_ABANDONED = DeadlineExceededError(
    "The version answered after the request's deadline; the caller had moved on."
)


@dataclass
class _Pending:
    job: Job
    reply: asyncio.Future[JobResult]


class Batcher:
    """Gathers concurrent requests for one version into model calls."""

    def __init__(
        self,
        model: ServedModel,
        log: LogWriter | None,
        *,
        max_batch_records: int = 64,
        max_wait_s: float = 0.0,
        max_queue_records: int = 0,
        shed: bool = True,
        observers: Sequence[BatchObserver] = (),
        reviews: ReviewSink | None = None,
    ) -> None:
        self.model = model
        self.max_wait_s = max_wait_s
        self.max_queue_records = max_queue_records
        self.shed = shed
        self._queued = 0  # records in the queue, not yet taken into a batch
        self._running: tuple[int, float] | None = None  # the call under way: rows, start
        self._shed = telemetry.SHED.labels(model.name)
        self.cost = CallCost()  # learned from the batches this version runs
        # Admission's cost: start to start of back-to-back batches, so it also holds what a
        # call leaves out (answering the batch's callers, forming the next batch).
        self.cycle = CallCost()
        self._backlog: tuple[int, float] | None = None  # last batch's rows and start, if
        # the queue was not empty when it ended
        self._arrived = 0  # records enqueued since the current batch was formed
        self._queue_seconds = telemetry.QUEUE_SECONDS.labels(model.name)
        self.log = log
        self.reviews = reviews
        self.max_batch_records = max_batch_records
        self.observers = list(observers)
        self._reply_observers: list[ReplyObserver] = []
        for observer in self.observers:
            if isinstance(observer, ReplyObserver):
                self._reply_observers.append(observer)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # One batch at a time for a model that computes; several for one that waits on
        # someone else's endpoint (a remote model), so one slow reply cannot hold up the
        # requests queued behind it.
        self.concurrent_batches = max(1, model.flavor.concurrent_batches)
        self._slots = asyncio.Semaphore(self.concurrent_batches)
        self._tasks: set[asyncio.Task[None]] = set()  # concurrent batches under way
        self._executor = ThreadPoolExecutor(
            self.concurrent_batches, thread_name_prefix=f"plinth-{model.name}"
        )
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0  # enqueued and not yet answered: retiring waits for zero
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Off the event loop: an abandoned call to a slow model may still be running.
        await asyncio.to_thread(self._executor.shutdown, True)
        self.model.flavor.close()  # a remote model's connections

    async def submit(self, job: Job) -> JobResult:
        """Score ``job`` in the next batch; returns once its log rows are committed."""
        return await self.enqueue(job)

    def enqueue(self, job: Job) -> asyncio.Future[JobResult]:
        """Queue ``job`` now (no await in between, so a hot switch cannot slip in).

        Cancelling the returned future abandons the job: it is not scored if it has not
        started, and its rows are not logged if it has (the caller moved on, e.g. past a
        deadline to the fallback).
        """
        reply: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._inflight += 1
        self._arrived += len(job.records)
        self._queued += len(job.records)
        reply.add_done_callback(self._answered)
        self._queue.put_nowait(_Pending(job, reply))
        return reply

    def _answered(self, _reply: asyncio.Future[JobResult]) -> None:
        self._inflight -= 1

    def admit(self, records: int, deadline: float) -> OverloadedError | None:
        """None to queue a request of ``records`` due by ``deadline`` (a ``perf_counter``
        time); the error to answer at once when the queue cannot serve it in time."""
        queued, running = self._queued, self._running
        if queued == 0 and running is None:
            return None
        cost = self.cycle if self.cycle.known else self.cost
        running_s = 0.0
        if running is not None:
            rows, started = running
            running_s = max(0.0, cost.predict(rows) - (time.perf_counter() - started))
        wait = expected_wait(
            cost,
            queued=queued,
            incoming=records,
            max_rows=self.max_batch_records,
            running_s=running_s,
        )
        waiting = queued + (running[0] if running is not None else 0)
        bound = self.max_queue_records
        if bound and waiting + records > bound:
            why = f"{waiting} records are waiting already (max_queue_records {bound})"
        elif self.shed and wait > deadline - time.perf_counter():
            why = f"its queue needs about {wait * 1000:.0f} ms, past this request's deadline"
        else:
            return None
        self._shed.inc()
        return OverloadedError(
            f"{self.model.name}:{self.model.version} is overloaded: {why}.",
            retry_after_s=max(1, math.ceil(wait)),
        )

    async def drain(self, poll_s: float = 0.02) -> None:
        """Wait until every request already queued here has its answer."""
        while self._inflight:
            await asyncio.sleep(poll_s)

    async def _run(self) -> None:
        mark = time.perf_counter()
        while True:
            await self._slots.acquire()
            try:
                first = await self._queue.get()
            except BaseException:
                self._slots.release()
                raise
            self._queued -= len(first.job.records)
            batch = [first]
            size = self._take(batch, len(first.job.records))
            now = time.perf_counter()
            # Records per second over the last cycle only: a burst stops counting at once.
            rate = self._arrived / max(now - mark, 1e-6)
            wait = wait_budget(
                self.cost,
                queued=size,
                max_rows=self.max_batch_records,
                rate=rate,
                max_wait_s=self.max_wait_s,
                slack_s=min(p.job.deadline for p in batch) - now,
            )
            if wait > 0:
                size = await self._gather(batch, size, now + wait)
            mark, self._arrived = time.perf_counter(), 0
            if self._backlog is not None:
                rows, started = self._backlog
                self.cycle.observe(rows, mark - started)
            telemetry.observe_many(self._queue_seconds, [mark - p.job.received for p in batch])
            self._running = (size, mark)
            if self.concurrent_batches == 1:
                await self._process(batch, size, mark)
            else:
                task = asyncio.get_running_loop().create_task(self._process(batch, size, mark))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _process(self, batch: list[_Pending], size: int, mark: float) -> None:
        """Score and log one batch on the executor, then answer its callers."""
        loop = asyncio.get_running_loop()
        try:
            try:
                results, log_error = await loop.run_in_executor(
                    self._executor, self._score_and_log, batch
                )
            except Exception as exc:  # a bug in our own path: fail this batch, keep serving
                error = ScoringFailedError(
                    f"Scoring failed unexpectedly: {type(exc).__name__}: {exc}"
                )
                results, log_error = [JobResult(error=error) for _ in batch], None
            else:
                self.cost.observe(size, time.perf_counter() - mark)
            finally:
                self._running = None
            self._backlog = (size, mark) if self._queued else None
            if log_error is not None:
                self._resolve(batch, results, log_error)
            else:
                self._after_log(batch, results, self._drafts(batch, results))
        finally:
            self._slots.release()

    def _score_and_log(self, batch: list[_Pending]) -> tuple[list[JobResult], PlinthError | None]:
        """On the scoring thread: answer the batch, then commit its log rows.

        The commit happens here, before any caller is answered, so the batch is the log's
        group and no request waits on another thread. A job whose caller gave up
        (deadline, then fallback) was never answered: it gets no log row.
        """
        jobs = [p.job for p in batch]
        traced = any(job.trace is not None for job in jobs)
        times = StageTimes(start=StageTimes.now()) if traced else None
        results = score(self.model, jobs, self.observers, times)
        try:
            return results, self._log(batch, results, times)
        finally:
            if times is not None:
                self._trace(batch, results, times)

    def _log(
        self, batch: list[_Pending], results: list[JobResult], times: StageTimes | None
    ) -> PlinthError | None:
        if times is not None:
            started = times.now()
        if self.log is not None:
            rows = [
                row
                for pending, result in zip(batch, results, strict=True)
                if not pending.reply.done()
                for row in result.rows
            ]
            try:
                self.log.write(rows)
            except PlinthError as error:
                return error
            finally:
                if times is not None:
                    times.log = (started, times.now())
        return None

    def _trace(self, batch: list[_Pending], results: list[JobResult], times: StageTimes) -> None:
        traced = [
            (
                p.job.trace,
                len(p.job.records),
                {"prediction_ids": [a["prediction_id"] for a in r.answers]},
            )
            for p, r in zip(batch, results, strict=True)
            if p.job.trace is not None
        ]
        try:
            traced[0][0].tracing.record_batch(self.model.name, self.model.version, traced, times)
        except Exception:  # tracing never fails a reply
            log.exception("could not record the trace of a batch")

    def _take(self, batch: list[_Pending], size: int) -> int:
        """Add whatever is queued, up to the batch limit; a request joins whole."""
        while size < self.max_batch_records and not self._queue.empty():
            nxt = self._queue.get_nowait()
            self._queued -= len(nxt.job.records)
            batch.append(nxt)
            size += len(nxt.job.records)
        return size

    async def _gather(self, batch: list[_Pending], size: int, until: float) -> int:
        """Wait (never past ``until``) for more records, as the cost model advised."""
        while size < self.max_batch_records:
            left = until - time.perf_counter()
            if left <= 0:
                break
            try:
                nxt = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                break
            self._queued -= len(nxt.job.records)
            batch.append(nxt)
            size = self._take(batch, size + len(nxt.job.records))
        return size

    @staticmethod
    def _drafts(batch: list[_Pending], results: list[JobResult]) -> list[Any]:
        return [
            draft
            for pending, result in zip(batch, results, strict=True)
            if not pending.reply.done()
            for draft in result.reviews
        ]

    def _after_log(
        self, batch: list[_Pending], results: list[JobResult], drafts: list[Any]
    ) -> None:
        # Review items go in after their predictions; the reply names them, so it waits.
        if self.reviews is None or not drafts:
            self._resolve(batch, results, None)
            return
        stored = asyncio.wrap_future(self.reviews.submit(drafts))

        def done(future: asyncio.Future[None]) -> None:
            exc = future.exception()
            error = exc if isinstance(exc, PlinthError) else None
            if exc is not None and error is None:
                error = StoreWriteError(
                    f"Could not store review items: {type(exc).__name__}: {exc}",
                    hint="Check the database is reachable; the prediction was logged.",
                )
            self._resolve(batch, results, error)

        stored.add_done_callback(done)

    def _resolve(
        self, batch: list[_Pending], results: list[JobResult], store_error: PlinthError | None
    ) -> None:
        now = time.perf_counter()
        final: list[JobResult] = []
        for pending, result in zip(batch, results, strict=True):
            if store_error is not None and result.error is None:
                result = JobResult(error=store_error)
            if pending.reply.cancelled() and result.error is None:
                # Its caller gave up at the deadline (and was answered by the fallback chain
                # or a 503): count what the caller got from this version, not a success.
                result = JobResult(error=_ABANDONED)
            final.append(result)
        self._count(batch, final, now)
        for pending, result in zip(batch, final, strict=True):
            if not pending.reply.done():
                pending.reply.set_result(result)

    def _count(self, batch: list[_Pending], results: list[JobResult], now: float) -> None:
        """The batch's metrics and reply observers: one increment per route and outcome, one
        histogram update and one observer call for the batch, not one of each per request."""
        name, version = self.model.name, str(self.model.version)
        requests: dict[tuple[str, str], int] = {}
        records: dict[str, int] = {}
        latencies: list[float] = []
        replies: list[tuple[JobResult, float]] = []
        for pending, result in zip(batch, results, strict=True):
            route = pending.job.route
            seconds = now - pending.job.received
            replies.append((result, seconds))
            error = result.error
            key = (route, "ok" if error is None else error.code)
            requests[key] = requests.get(key, 0) + 1
            if error is None:
                records[route] = records.get(route, 0) + len(result.answers)
                latencies.append(seconds)
            elif isinstance(error, ContractError):
                for p in error.problems:
                    telemetry.VALIDATION_PROBLEMS.labels(name, p.field or "", p.code).inc()
            elif isinstance(error, ModelError):
                telemetry.MODEL_ERRORS.labels(name, version, error.code).inc()
        for key, count in requests.items():
            self._children_of(key)[0].inc(count)
        for route, count in records.items():
            self._children_of((route, "ok"))[1].inc(count)
        if latencies:  # one histogram per model, whatever the route
            telemetry.observe_many(self._children_of(next(iter(requests)))[2], latencies)
        for observer in self._reply_observers:
            observer.observe_replies(self.model, replies)

    def _children_of(self, key: tuple[str, str]) -> tuple[Any, Any, Any]:
        """The labelled metrics of one (route, outcome): label lookups cost more than the
        increments, so they are kept."""
        children = self._children.get(key)
        if children is None:
            name, version, route = self.model.name, str(self.model.version), key[0]
            children = (
                telemetry.REQUESTS.labels(name, version, route, key[1]),
                telemetry.RECORDS.labels(name, version, route),
                telemetry.REQUEST_SECONDS.labels(name),
            )
            self._children[key] = children
        return children
