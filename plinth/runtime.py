"""The Runtime: the one place that puts Plinth together from settings and policies.

Every edge — ``plinth serve`` (one Runtime per worker process), the CLI commands,
``plinth.api`` and the background worker — opens a Runtime and asks it for services; nothing
else constructs or wires services. It has three stages, each undone by the next call:

- ``Runtime.open(settings)`` opens the store; services are built on first use (so a CLI
  command that lists models never imports scikit-learn), and ``policies`` (plinth.toml) is
  read and validated on first use, every problem listed at once;
- ``await start_serving()`` starts the request path of one worker: log writer, review writer,
  monitoring collector, model pool and router, with every live deployment loaded and warmed;
- ``await start_background()`` starts what runs beside it under store leases: alert rules,
  canary analysis, retraining (triggers and jobs), log retention ([models.NAME.log]
  retention), the performance and review gauges;
- ``await stop()`` stops both in reverse order (every answered batch still counted and
  logged), ``close()`` closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from plinth.config.settings import Settings
from plinth.errors import NotServingError, PlinthError
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from plinth.config.policies import Policies
    from plinth.services.auth import Tokens
    from plinth.services.feedback.labels import Feedback
    from plinth.services.feedback.performance import Performance
    from plinth.services.monitoring.alerts import AlertEvaluator, WebhookSink
    from plinth.services.monitoring.collector import MonitorCollector
    from plinth.services.monitoring.report import Monitor
    from plinth.services.registry.versions import Registry
    from plinth.services.review.queue import ReviewQueue
    from plinth.services.review.writer import ReviewWriter
    from plinth.services.rollout.deployments import Deployments
    from plinth.services.serving.logwriter import LogWriter
    from plinth.services.serving.pool import ModelPool
    from plinth.services.serving.routing import Router
    from plinth.services.tracing import Tracing
    from plinth.services.training.jobs import Retraining
    from plinth.store.notifications import Listener

log = logging.getLogger("plinth.runtime")


@dataclass
class Serving:
    """The request path of one worker, as ``start_serving`` built it."""

    log_writer: LogWriter | None
    review_writer: ReviewWriter
    collector: MonitorCollector
    pool: ModelPool
    router: Router
    flush_task: asyncio.Task[None]
    #: Models that failed to load at start-up, by name: their error as a caller sees it.
    load_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: PostgreSQL's notifications of new deployment revisions (None elsewhere, or off).
    listener: Listener | None = None


class Runtime:
    """Settings, policies, the store and every service, opened once and closed once."""

    def __init__(
        self, settings: Settings, store: Store, *, policies: Policies | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.serving: Serving | None = None
        # OpenTelemetry tracing (PLINTH_TRACING); None when off, as by default.
        self.tracing: Tracing | None = None
        self.evaluator: AlertEvaluator | None = None
        self._webhook: WebhookSink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if policies is not None:
            self.__dict__["policies"] = policies  # given: skip reading plinth.toml

    @classmethod
    def open(cls, settings: Settings | None = None, *, policies: Policies | None = None) -> Runtime:
        """Open the store (migrating it if needed); everything else is built on first use."""
        settings = settings or Settings()
        store = Store(
            settings.resolved_database_url(),
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        return cls(settings, store, policies=policies)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store; call ``stop`` first if anything was started."""
        if "registry" in self.__dict__:  # remote spend not yet written joins the day's total
            self.registry.ledger.flush()
        self.store.close()

    # ------------------------------------------------------------------ services

    @cached_property
    def policies(self) -> Policies:
        """plinth.toml over the settings' defaults, validated once (``config.invalid``)."""
        return self.settings.policies()

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts_dir)

    @cached_property
    def registry(self) -> Registry:
        from plinth.services.registry.versions import Registry

        return Registry(self.store, self.artifacts)

    @cached_property
    def deployments(self) -> Deployments:
        from plinth.services.rollout.deployments import Deployments

        return Deployments(self.store)

    @cached_property
    def feedback(self) -> Feedback:
        from plinth.services.feedback.labels import Feedback

        return Feedback(self.store, stored_key=self.policies.stored_key)

    @cached_property
    def performance(self) -> Performance:
        from plinth.services.feedback.performance import Performance

        return Performance(self.store)

    @cached_property
    def review_queue(self) -> ReviewQueue:
        from plinth.services.review.queue import ReviewQueue

        return ReviewQueue(
            self.store,
            lease=timedelta(seconds=self.settings.review_lease_s),
            sla=timedelta(seconds=self.settings.review_sla_s),
        )

    @cached_property
    def tokens(self) -> Tokens:
        from plinth.services.auth import Tokens

        return Tokens(self.store, self.settings.tokens)

    @cached_property
    def retraining(self) -> Retraining:
        from plinth.services.training.jobs import Retraining

        return Retraining(
            self.store,
            self.registry,
            self.policies,
            workdir=self.settings.home / "training",
            lease_s=self.settings.training_lease_s,
            code_dir=(self.policies.source.parent if self.policies.source else None),
        )

    def monitor(self, name: str) -> Monitor:
        """The report builder for ``name``, with its drift detectors from the policies."""
        from plinth.services.monitoring.report import Monitor

        return Monitor(self.store, drift=self.policies.alerts(name).drift)

    def log_writer(self) -> LogWriter:
        """A started writer thread for logs written outside the request path (batch
        scoring); the caller closes it."""
        from plinth.services.serving.logwriter import LogWriter

        writer = LogWriter(self.store, max_rows=self.settings.log_max_batch_rows)
        writer.start()
        return writer

    def review_writer(self) -> ReviewWriter:
        """A started review writer (items, then their context); the caller closes it."""
        from plinth.services.review.writer import ReviewWriter

        writer = ReviewWriter(self.store, with_context=self.settings.review_context)
        writer.start()
        return writer

    @contextlib.contextmanager
    def writers(self) -> Iterator[tuple[LogWriter, ReviewWriter]]:
        """Both writers for offline work (``plinth predict``), closed on exit: the review
        writer first, so every item it stores has its prediction's row committed."""
        log_writer = self.log_writer()
        reviews = self.review_writer()
        try:
            yield log_writer, reviews
        finally:
            reviews.close()
            log_writer.close()

    # ------------------------------------------------------------------ serving

    async def start_serving(self) -> Serving:
        """Build and start one worker's request path; every registered model is loaded and
        every live deployment applied (versions loaded and warmed) before this returns."""
        from plinth.services.monitoring.collector import MonitorCollector
        from plinth.services.rollout.applied import WorkerReporter
        from plinth.services.rollout.deployments import Deployments
        from plinth.services.serving.logwriter import LogWriter
        from plinth.services.serving.pool import ModelPool
        from plinth.services.serving.routing import Router, warm

        settings = self.settings
        policies = self.policies
        if settings.tracing and self.tracing is None:
            from plinth.services.tracing import Tracing

            self.tracing = Tracing.from_environment()
        log_writer = None
        if settings.log_predictions:
            log_writer = LogWriter(
                self.store, max_rows=settings.log_max_batch_rows, probe_s=settings.store_probe_s
            )
            log_writer.start()
        collector = MonitorCollector(self.store, interval_s=settings.profile_interval_s)
        flush_task = asyncio.create_task(collector.run())
        review_writer = self.review_writer()
        pool = ModelPool(
            self.store,
            self.registry,
            log_writer,
            policies=policies,
            observers=[collector],
            reviews=review_writer,
        )
        router = Router(
            pool,
            Deployments(self.store),
            request_timeout_s=settings.request_timeout_s,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown_s=settings.breaker_cooldown_s,
            poll_s=settings.deployment_poll_s,
            shadow_queue_size=settings.shadow_queue_size,
            reporter=WorkerReporter(self.store, settings.replica),
        )
        serving = Serving(log_writer, review_writer, collector, pool, router, flush_task)
        self.serving = serving
        deployed = {r.name for r in await asyncio.to_thread(router.deployments.live)}
        for summary in await asyncio.to_thread(self.store.list_models):
            if summary.name in deployed:
                continue  # the router loads what the live revision routes to, not the newest
            try:
                batcher = await pool.get(summary.name)
                # The first call pays for lazy imports and caches (about a second for some
                # pipelines): pay it before /readyz, not in the first request's latency.
                await asyncio.to_thread(warm, batcher.model)
            except PlinthError as exc:
                log.error("could not load %s: %s", summary.name, exc)
                serving.load_errors[summary.name] = exc.to_dict()["error"]
        # The live deployments are applied before the worker reports ready, then polled;
        # on PostgreSQL a notification makes the poll happen at once.
        await router.start()
        if settings.deployment_listen:
            loop = asyncio.get_running_loop()

            def wake_router() -> None:
                loop.call_soon_threadsafe(router.wake)

            serving.listener = router.deployments.listen(wake_router)
        return serving

    async def start_background(
        self,
        *,
        alerts: bool | None = None,
        canary: bool | None = None,
        gauges: bool = True,
        training: bool | None = None,
    ) -> None:
        """Start the work that runs beside serving; each kind takes a lease in the store, so
        exactly one process of a deployment does it at a time."""
        from plinth.services.monitoring.alerts import AlertEvaluator, Sink, WebhookSink, log_sink
        from plinth.services.rollout.canary import CanaryAnalyzer

        settings = self.settings
        if settings.alerts_enabled if alerts is None else alerts:
            sinks: list[Sink] = [log_sink]
            if settings.webhook_url:
                self._webhook = WebhookSink(settings.webhook_url)
                sinks.append(self._webhook)
            self.evaluator = AlertEvaluator(
                self.store,
                self.policies.monitoring,
                sinks,
                lease_s=max(3 * settings.alert_interval_s, 5.0),
                review_sla_s=settings.review_sla_s,
            )
            self._start(self.evaluator.run(settings.alert_interval_s))
        if settings.canary_analysis if canary is None else canary:
            analyzer = CanaryAnalyzer(
                self.store,
                policies=self.policies.canary,
                interval_hint_s=settings.profile_interval_s,
                lease_s=max(3 * settings.canary_interval_s, 5.0),
            )
            self._start(analyzer.run(settings.canary_interval_s))
        if settings.training_jobs if training is None else training:
            # Triggers, queued jobs and the canaries jobs started; a job runs in one process.
            self._start(self.retraining.run(settings.training_interval_s))
        from plinth.services.privacy import LogRetention

        retention = LogRetention(
            self.store, self.policies, lease_s=max(2 * settings.retention_interval_s, 5.0)
        )
        if retention.active:  # one process at a time deletes rows past each model's retention

            def retain() -> None:
                retention.try_run()

            self._start(_every(settings.retention_interval_s, retain, "log retention"))
        if gauges:
            self._start(_every(settings.performance_refresh_s, self._publish_gauges, "gauges"))
        # PostgreSQL: the log's daily partitions a week ahead (a no-op elsewhere).
        self._start(_every(PARTITION_CHECK_S, self._ensure_partitions, "log partitions"))

    def _start(self, work: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(work))

    def _ensure_partitions(self) -> None:
        self.store.ensure_log_partitions()

    def _publish_gauges(self) -> None:
        """The performance and review-queue gauges on /metrics (latest window)."""
        from plinth.core.durations import parse_duration

        window = parse_duration(self.settings.performance_window)
        for summary in self.store.list_models():
            self.performance.publish(summary.name, window)
        self.review_queue.publish(self.review_queue.numbers())

    async def stop(self) -> None:
        """Stop background work, then the request path: queued requests are answered and
        their batches counted before the collector's last flush and the writers close."""
        tasks, self._tasks = self._tasks, []
        serving, self.serving = self.serving, None
        if "retraining" in self.__dict__:
            self.retraining.stopping.set()  # a trainer still running is stopped, not awaited
        await _cancel(tasks)
        if serving is not None:
            if serving.listener is not None:
                await asyncio.to_thread(serving.listener.stop)
            await serving.router.close()
            await serving.pool.close()
            await _cancel([serving.flush_task])  # after the pool: every batch is counted
            await asyncio.to_thread(serving.collector.flush, final=True)
            await asyncio.to_thread(serving.review_writer.close)
            if serving.log_writer is not None:
                await asyncio.to_thread(serving.log_writer.close)
        if self._webhook is not None:
            await asyncio.to_thread(self._webhook.close)
            self._webhook = None
        if self.tracing is not None:  # after the pool: every batch's spans are drawn
            await asyncio.to_thread(self.tracing.shutdown)
            self.tracing = None

    def require_serving(self) -> Serving:
        """The request path; a clear 503 when this runtime does not serve (yet)."""
        if self.serving is None:
            raise NotServingError(
                "This process is not serving models (yet).",
            )
        return self.serving


PARTITION_CHECK_S = 3600.0


async def _every(seconds: float, work: Callable[[], None], what: str) -> None:
    """Run ``work`` in a thread now and every ``seconds``; a failure is logged, not fatal."""
    from plinth.services.process import in_thread

    while True:
        try:
            await in_thread(work)
        except Exception:  # a convenience (gauges) must never stop serving
            log.exception("background work %r failed; retrying in %.0f s", what, seconds)
        await asyncio.sleep(seconds)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@contextlib.contextmanager
def opened(settings: Settings | None = None, **kwargs: Any) -> Iterator[Runtime]:
    """``with opened(settings) as runtime:`` — a Runtime closed on exit."""
    runtime = Runtime.open(settings, **kwargs)
    try:
        yield runtime
    finally:
        runtime.close()
