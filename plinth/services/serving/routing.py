"""The router: which version answers a request, what happens when it fails, and who gets copies.

Per request: pick champion or canary (by a stable hash of the caller's key, else at random),
give that version the deployment's deadline (refused at once, ``server.overloaded``, when
its queue cannot meet it: ``Batcher.admit``), and if it raises, breaks its output contract or
misses the deadline, walk the fallback chain — other versions, then ``default`` (the
majority-class / median answer stored at registration). A caller's mistake (422) never falls
back: another version would refuse it too. A circuit breaker per version skips one that
keeps failing while there is somewhere else to go, and probes it again after a cool-down.

Hot switching: a background task polls the store's change counters; a new revision's versions
are loaded and warmed *before* its plan replaces the old one (one dict assignment, so each
request sees one whole plan), and versions nobody routes to any more are released once their
queued requests are answered. A contract edit reloads the loaded version with its new
contract the same way. After each change the worker reports what it applied, or the load
error that stopped it (``services/rollout/applied.py``), so a deploy can wait for it.

Shadows get a copy of the request after the reply through a bounded queue; when the queue is
full the copy is dropped and counted, so a slow shadow can never slow or fail a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client import Counter

from plinth.core.ids import new_ids
from plinth.core.output import confidence as top_probability
from plinth.errors import (
    ContractError,
    DeadlineExceededError,
    FallbackExhaustedError,
    ModelError,
    NoDefaultOutputError,
    PlinthError,
    Problem,
)
from plinth.errors.serving import BREAKER_OPEN, DEFAULT_USED, FALLBACK_USED, NO_DEFAULT
from plinth.services.process import in_thread
from plinth.services.registry.versions import ServedModel
from plinth.services.rollout.applied import HEARTBEAT_S, WorkerReporter
from plinth.services.rollout.deployments import DEFAULT, Deployments, DeploymentSpec
from plinth.services.serving.batcher import Batcher
from plinth.services.serving.pool import ModelPool
from plinth.services.serving.scoring import Job, JobResult, answer_and_row, contract_error, score
from plinth.services.tracing import RequestTrace

log = logging.getLogger("plinth.routing")

FALLBACKS = Counter(
    "plinth_fallbacks",
    "Attempts that failed over to the next entry of the fallback chain, by reason.",
    ["model", "version", "reason"],
)
SHADOW_DROPPED = Counter(
    "plinth_shadow_dropped",
    "Shadow copies dropped because the shadow queue was full.",
    ["model"],
)
SWITCHES = Counter(
    "plinth_deployment_switches",
    "Deployment revisions applied by this worker.",
    ["model"],
)

CHAMPION, CANARY, SHADOW, FALLBACK = "champion", "canary", "shadow", "fallback"
_HASH_SPACE = float(2**64)


def bucket(key: str) -> float:
    """A stable position in [0, 100) for a request key: same key, same version, everywhere."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE * 100.0


def choose(spec: DeploymentSpec, key: str | None, rng: random.Random) -> tuple[str, int]:
    """Champion or canary for one request; weights 0 and 100 are exact."""
    canary = spec.canary
    if canary is None or canary.weight <= 0.0:
        return CHAMPION, spec.champion
    if canary.weight >= 100.0:
        return CANARY, canary.version
    position = bucket(key) if key is not None else rng.random() * 100.0
    if position < canary.weight:
        return CANARY, canary.version
    return CHAMPION, spec.champion


class CircuitBreaker:
    """Closed → open after ``failures`` in a row → half-open (one probe) after ``cooldown_s``."""

    def __init__(
        self, failures: int = 5, cooldown_s: float = 5.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock or time.monotonic
        self._streak = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._probing or self.clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go to this version now? Half-open lets exactly one probe through."""
        if self._opened_at is None:
            return True
        if not self._probing and self.clock() - self._opened_at >= self.cooldown_s:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._streak = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._streak += 1
        if self._probing or self._streak >= self.failures:
            self._opened_at = self.clock()
            self._probing = False

    def neutral(self) -> None:
        """The call ended for a reason that says nothing about the model (a 422)."""
        self._probing = False


@dataclass(frozen=True)
class Plan:
    """One model's routing as this worker applies it."""

    spec: DeploymentSpec
    revision: int | None = None
    revision_id: int = 0


@dataclass
class Routed:
    """The outcome of one routed request."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    version: int | None = None
    route: str = CHAMPION
    revision: int | None = None
    error: PlinthError | None = None


@dataclass
class _Shadow:
    name: str
    version: int
    records: list[Any]
    key: str | None
    request_id: str


class Router:
    """Routes requests over the pool and keeps this worker's plans in step with the store."""

    def __init__(
        self,
        pool: ModelPool,
        deployments: Deployments,
        *,
        request_timeout_s: float = 30.0,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 5.0,
        poll_s: float = 0.25,
        shadow_queue_size: int = 1000,
        shadow_concurrency: int = 64,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        reporter: WorkerReporter | None = None,
    ) -> None:
        self.pool = pool
        self.deployments = deployments
        self.request_timeout_s = request_timeout_s
        self.breaker_failures = breaker_failures
        self.breaker_cooldown_s = breaker_cooldown_s
        self.poll_s = poll_s
        self.clock = clock
        self._rng = random.Random(seed)
        self._plans: dict[str, Plan] = {}
        self._breakers: dict[tuple[str, int], CircuitBreaker] = {}
        self.reporter = reporter
        self._counters = (-1, -1)  # (deployments, contract edits) as last applied
        self._failed: dict[str, tuple[int, int, dict[str, Any]]] = {}  # name -> id, rev, error
        self._reported: dict[str, tuple[Any, ...]] = {}
        self._refresh_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._shadows: asyncio.Queue[_Shadow] = asyncio.Queue(maxsize=shadow_queue_size)
        self._shadow_slots = asyncio.Semaphore(shadow_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> None:
        """Apply the live revisions, then keep polling for changes (unless ``watch=False``)."""
        if self.reporter is not None:
            await in_thread(self.reporter.heartbeat)
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._shadow_worker()))
        if watch:
            self._watcher = loop.create_task(self._watch())

    async def close(self) -> None:
        # Let the watcher finish a refresh in flight rather than cancel it: a cancelled
        # to_thread() keeps its store connection after the store is closed.
        self._stopping = True
        self._wake.set()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher
            self._watcher = None
        for task in [*self._background, *self._tasks]:
            task.cancel()
        for task in [*self._background, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        self._tasks.clear()
        if self.reporter is not None:  # a worker that stops is no longer waited for
            with contextlib.suppress(Exception):
                await in_thread(self.reporter.forget)

    def wake(self) -> None:
        """Check for a new revision now instead of at the next poll (call on the loop)."""
        self._wake.set()

    def plan(self, name: str) -> Plan | None:
        return self._plans.get(name)

    def serving(self, name: str) -> int | None:
        """The champion version this worker routes ``name`` to, if it knows."""
        plan = self._plans.get(name)
        if plan is not None:
            return plan.spec.champion
        versions = self.pool.versions_of(name)
        return versions[-1] if versions else None

    def breaker(self, name: str, version: int) -> CircuitBreaker:
        found = self._breakers.get((name, version))
        if found is None:
            found = CircuitBreaker(self.breaker_failures, self.breaker_cooldown_s, self.clock)
            self._breakers[(name, version)] = found
        return found

    # -- hot switching -----------------------------------------------------------------------

    async def _watch(self) -> None:
        beat = time.monotonic()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.refresh()
                if self.reporter is not None and time.monotonic() - beat >= HEARTBEAT_S:
                    beat = time.monotonic()
                    await in_thread(self.reporter.heartbeat)
            except Exception:  # a store hiccup must not kill the watcher; retry next tick
                log.exception("could not refresh deployments")

    async def refresh(self) -> bool:
        """Apply any new revision or contract edit; True when something changed. Cheap when
        nothing did (one read of both counters)."""
        async with self._refresh_lock:
            counters = await in_thread(self.deployments.counters)
            if counters == self._counters:
                return False
            deployed, edited = counters
            changed = False
            touched: set[str] = set()
            if self._counters[1] >= 0 and edited != self._counters[1]:
                since = self._counters[1]
                edits = await in_thread(lambda: self.deployments.contract_edits_since(since))
                for edit in edits:
                    if await self._reload(edit.name, edit.version):
                        touched.add(edit.name)
                        changed = True
            if deployed != self._counters[0]:
                for revision in await in_thread(self.deployments.live):
                    touched.add(revision.name)
                    plan = self._plans.get(revision.name)
                    if plan is not None and plan.revision_id == revision.id:
                        continue
                    try:
                        await self._prepare(revision.name, revision.spec)
                    except PlinthError as exc:
                        # Keep serving the old plan; the next change (or restart) tries again.
                        log.error(
                            "cannot apply %s revision %s: %s",
                            revision.name,
                            revision.revision,
                            exc,
                        )
                        error = exc.to_dict()["error"]
                        self._failed[revision.name] = (revision.id, revision.revision, error)
                        continue
                    self._failed.pop(revision.name, None)
                    self._plans[revision.name] = Plan(revision.spec, revision.revision, revision.id)
                    SWITCHES.labels(revision.name).inc()
                    changed = True
                    self._spawn(self._release_unused(revision.name))
            if self._counters[0] < 0:  # first refresh: report every model this worker serves
                touched.update(m.name for m in self.pool.loaded)
            self._counters = counters
            await self._report(touched)
            return changed

    async def _reload(self, name: str, version: int) -> bool:
        try:
            return await self.pool.reload(name, version)
        except PlinthError as exc:  # keep the loaded contract; the worker log says why
            log.error("cannot reload %s:%s for its edited contract: %s", name, version, exc)
            return False

    async def _report(self, names: set[str]) -> None:
        """Tell the store what this worker serves for each of ``names`` (when it changed)."""
        if self.reporter is None:
            return
        reporter = self.reporter
        for name in sorted(names):
            plan = self._plans.get(name)
            failed = self._failed.get(name)
            contracts = self.pool.contract_revisions(name)
            if failed is not None and (plan is None or failed[0] > plan.revision_id):
                revision_id, revision, error = failed
                report: tuple[Any, ...] = (revision_id, revision, error, contracts)
            else:
                report = (
                    None if plan is None else plan.revision_id,
                    None if plan is None else plan.revision,
                    None,
                    contracts,
                )
            if self._reported.get(name) == report:
                continue
            call = functools.partial(
                reporter.report,
                name,
                revision_id=report[0],
                revision=report[1],
                error=report[2],
                contracts=report[3],
            )
            try:
                await in_thread(call)
            except PlinthError as exc:  # the next change reports again
                log.warning("could not report what this worker serves for %s: %s", name, exc)
                continue
            self._reported[name] = report

    async def _prepare(self, name: str, spec: DeploymentSpec) -> None:
        """Load and warm every version the spec routes to, before any traffic moves."""
        fresh = [v for v in spec.versions() if v not in self.pool.versions_of(name)]
        batchers = [await self.pool.get(name, v) for v in sorted(spec.versions())]
        await asyncio.gather(
            *(asyncio.to_thread(warm, b.model) for b in batchers if b.model.version in fresh)
        )

    async def _release_unused(self, name: str) -> None:
        """Retire the versions of ``name`` the live plan no longer routes to."""
        for version in self.pool.versions_of(name):
            current = self._plans.get(name)
            if current is None or version in current.spec.versions():
                continue
            await self.pool.retire(name, version)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the request path --------------------------------------------------------------------

    async def predict(
        self,
        name: str,
        records: list[Any],
        *,
        request_id: str,
        received: float,
        key: str | None = None,
        version: int | None = None,
        trace: RequestTrace | None = None,
    ) -> Routed:
        """Answer one request through the plan for ``name`` (or the pinned ``version``)."""
        if self.pool.log is not None:
            refused = self.pool.log.refuse()  # the log cannot commit: fail fast, no model call
            if refused is not None:
                return Routed(error=refused)
        hard_deadline = received + self.request_timeout_s
        if version is not None:  # pinned by the caller: no routing, no fallback
            batcher = await self.pool.get(name, version)
            shed = batcher.admit(len(records), hard_deadline)
            if shed is not None:
                return Routed(error=shed)
            job = Job(
                records, request_id, received, hard_deadline, route=CHAMPION, key=key, trace=trace
            )
            result = await batcher.submit(job)
            return Routed(result.answers, version, CHAMPION, None, result.error)

        plan = self._plans.get(name)
        if plan is None:
            batcher = await self.pool.get(name)
            plan = Plan(DeploymentSpec(champion=batcher.model.version))
        route, first = choose(plan.spec, key, self._rng)
        chain: list[tuple[str, int | str]] = [(route, first)]
        chain += [(FALLBACK, e) for e in plan.spec.fallback if e != first]
        reasons: list[Problem] = []
        last_error: PlinthError | None = None
        for position, (entry_route, target) in enumerate(chain):
            is_last = position == len(chain) - 1
            if target == DEFAULT:
                routed = await self._default(
                    name, plan, records, request_id, received, key, reasons
                )
                if routed.error is None or isinstance(routed.error, ContractError):
                    return routed
                reasons.extend(routed.error.problems)
                last_error = routed.error
                continue
            assert isinstance(target, int)
            breaker = self.breaker(name, target)
            if not breaker.allow() and not is_last:
                reasons.append(
                    Problem(
                        BREAKER_OPEN,
                        f"version {target} is failing; its circuit breaker is open",
                        field=str(target),
                    )
                )
                FALLBACKS.labels(name, str(target), "breaker_open").inc()
                continue
            started = time.perf_counter()
            deadline = hard_deadline
            if plan.spec.deadline_ms is not None:
                deadline = min(hard_deadline, started + plan.spec.deadline_ms / 1000.0)
            batcher = await self.pool.get(name, target)
            shed = batcher.admit(len(records), deadline)
            if shed is not None:  # overload is not the model's failure: no fallback, no breaker
                return Routed(error=shed, revision=plan.revision)
            job = Job(
                records, request_id, received, deadline, route=entry_route, key=key, trace=trace
            )
            pending = batcher.enqueue(job)
            try:
                result = await within(pending, max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                result = JobResult(error=_deadline_error(target, plan.spec.deadline_ms))
            if result.error is None:
                breaker.success()
                answers = result.answers
                if reasons:
                    answers = _with_warnings(answers, [_fallback_warning(reasons)])
                self._copy_to_shadows(name, plan.spec, records, key, request_id)
                return Routed(answers, target, entry_route, plan.revision)
            if not isinstance(result.error, ModelError):
                breaker.neutral()  # the caller's fault (422) or the log's (503): no fallback
                return Routed(error=result.error, revision=plan.revision)
            breaker.failure()
            reason = result.error.code.removeprefix("model.")
            FALLBACKS.labels(name, str(target), reason).inc()
            reasons.append(
                Problem(
                    result.error.code,
                    f"version {target}: [{result.error.code}] {result.error.message}",
                    field=str(target),
                )
            )
            last_error = result.error
        if len(chain) == 1 and last_error is not None:
            return Routed(error=last_error, revision=plan.revision)  # no chain: the model's error
        return Routed(
            error=FallbackExhaustedError(
                f"Every entry of {name!r}'s fallback chain failed ({len(reasons)} attempts).",
                problems=reasons,
            ),
            revision=plan.revision,
        )

    async def _default(
        self,
        name: str,
        plan: Plan,
        records: list[Any],
        request_id: str,
        received: float,
        key: str | None,
        reasons: list[Problem],
    ) -> Routed:
        champion = (await self.pool.get(name, plan.spec.champion)).model
        note = _fallback_warning(reasons)
        result = await asyncio.to_thread(
            default_answers, champion, records, request_id, received, key, note
        )
        if result.error is None and result.rows and self.pool.log is not None:
            await asyncio.wrap_future(self.pool.log.submit(result.rows))
        if result.error is None:
            self._copy_to_shadows(name, plan.spec, records, key, request_id)
        return Routed(result.answers, champion.version, FALLBACK, plan.revision, result.error)

    # -- shadows -----------------------------------------------------------------------------

    def _copy_to_shadows(
        self, name: str, spec: DeploymentSpec, records: list[Any], key: str | None, rid: str
    ) -> None:
        for version in spec.shadows:
            try:
                self._shadows.put_nowait(_Shadow(name, version, records, key, rid))
            except asyncio.QueueFull:
                SHADOW_DROPPED.labels(name).inc()

    async def _shadow_worker(self) -> None:
        while True:
            item = await self._shadows.get()
            await self._shadow_slots.acquire()
            self._spawn(self._run_shadow(item))

    async def _run_shadow(self, item: _Shadow) -> None:
        try:
            batcher: Batcher = await self.pool.get(item.name, item.version)
            now = time.perf_counter()
            job = Job(
                item.records, item.request_id, now, now + self.request_timeout_s, SHADOW, item.key
            )
            result = await batcher.submit(job)
            if result.error is not None:
                log.info("shadow %s:%s failed: %s", item.name, item.version, result.error)
        except Exception:  # a shadow never affects anything else
            log.exception("shadow %s:%s failed", item.name, item.version)
        finally:
            self._shadow_slots.release()


async def within(future: asyncio.Future[JobResult], timeout: float) -> JobResult:
    """``asyncio.wait_for`` for a future we own: cancelled (abandoned) on timeout.

    One timer per request instead of wait_for's extra future, callbacks and wrapper.
    """
    if future.done():
        return future.result()
    expired = False

    def expire() -> None:
        nonlocal expired
        if not future.done():
            expired = True
            future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await future
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


def warm(model: ServedModel) -> None:
    """One throwaway call on a typical record (training medians / modes), not logged.

    The first call into a freshly loaded model pays for lazy imports and caches; paying it
    here keeps that latency off the first real request after a switch.
    """
    if not model.flavor.warm_up:  # a remote model: a warm-up call would be sent and paid for
        return
    sample = {f.name: f.impute for f in model.contract.fields}
    now = time.perf_counter()
    try:
        score(model, [Job([sample], "warm-up", now, now + 60.0)])
    except Exception:  # a model that fails here fails in traffic too, where the breaker acts
        log.warning("warm-up of %s:%s failed", model.name, model.version, exc_info=True)


def default_answers(
    model: ServedModel,
    records: list[Any],
    request_id: str,
    received: float,
    key: str | None,
    note: dict[str, Any],
) -> JobResult:
    """The registration-time default (majority class / median) for every record, logged.

    The input contract still applies: a malformed request is the caller's error even here.
    """
    default = model.record.metadata.get("default_output")
    if not isinstance(default, dict) or "prediction" not in default:
        return JobResult(
            error=NoDefaultOutputError(
                f"{model.name}:{model.version} has no default output.",
                problems=[Problem(NO_DEFAULT, "no default output was stored")],
            )
        )
    checked = model.contract.apply(records)
    problems = checked.all_problems()
    if problems:
        return JobResult(error=contract_error(problems))
    probabilities = default.get("probabilities")
    conf: float | None = None
    if isinstance(probabilities, dict) and probabilities:
        conf = float(top_probability(np.asarray([list(probabilities.values())], dtype=float))[0])
    output: dict[str, Any] = {"prediction": default["prediction"]}
    if probabilities is not None:
        output["probabilities"] = probabilities
    low = {
        "code": DEFAULT_USED,
        "message": "answered by the default responder (majority class / median from training)",
        "hint": "Low confidence: no model answered this request.",
    }
    features = checked.features()
    ts = datetime.now(UTC)
    latency_ms = (time.perf_counter() - received) * 1000.0
    result = JobResult()
    ids = new_ids(len(records))
    for position in range(len(records)):
        answer, row = answer_and_row(
            model,
            prediction_id=ids[position],
            ts=ts,
            output=output,
            confidence=conf,
            route=FALLBACK,
            warnings=[w.to_dict() for w in checked.warnings[position]] + [note, low],
            record=dict(records[position]),
            features=features[position],
            latency_ms=latency_ms,
            request_id=request_id,
            key=key,
        )
        result.answers.append(answer)
        result.rows.append(dataclasses.replace(row, output={**output, "default": True}))
    return result


def _fallback_warning(reasons: list[Problem]) -> dict[str, Any]:
    return {
        "code": FALLBACK_USED,
        "message": "answered by the fallback chain: " + "; ".join(p.message for p in reasons),
        "hint": "The routed version failed; `plinth history NAME` shows the deployment.",
    }


def _with_warnings(
    answers: list[dict[str, Any]], extra: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [{**a, "warnings": [*a.get("warnings", []), *extra]} for a in answers]


def _deadline_error(version: int, deadline_ms: int | None) -> ModelError:
    budget = "the request timeout" if deadline_ms is None else f"its {deadline_ms} ms deadline"
    return DeadlineExceededError(
        f"Version {version} did not answer within {budget}.",
    )
