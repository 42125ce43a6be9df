"""Did the change reach the workers? Each worker reports what it applied; callers wait on it.

A deployment revision or a contract edit is only a row until the serving workers load it. A
worker that cannot load a version keeps serving the revision before, so ``plinth deploy``
would look successful while nothing changed. Every worker therefore keeps a heartbeat and
reports, per model, the revision it applied or failed to apply (with the load error's code,
message and hint) and the contract revision of each version it has loaded. ``plinth deploy``,
``promote``, ``rollback``, ``contract set`` and their HTTP routes wait, bounded, until every
live worker has reported; the ``deployment_not_applied`` alert reads the same rows.

A worker is live while its heartbeat is younger than ``LIVE_S``; one that stops cleanly
removes its rows, one that was killed ages out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from plinth.errors import ApplyTimeoutError, Problem, RevisionNotAppliedError
from plinth.errors.rollout import WORKER_PENDING

if TYPE_CHECKING:
    from plinth.store import Store
    from plinth.store.workers import WorkerState, WorkerStore

HEARTBEAT_S = 2.0  # how often a serving worker says it is alive
LIVE_S = 10.0  # a worker not heard from for this long is not waited for
STALE_S = 3600.0  # rows of a worker silent this long are deleted
DEFAULT_WAIT_S = 10.0  # how long deploy/promote/rollback/contract set wait by default
POLL_S = 0.05

APPLIED, FAILED = "applied", "failed"


def _rows(store: Store) -> WorkerStore:
    """The workers' rows. SQLAlchemy (like asyncio, below) is imported on first use: every
    ``plinth`` command imports this module at start-up for ``DEFAULT_WAIT_S``."""
    from plinth.store.workers import WorkerStore

    return WorkerStore(store)


@dataclass(frozen=True)
class Applied:
    """How a change landed: on ``workers`` live workers (0: no server was running)."""

    workers: int
    replicas: list[str] = field(default_factory=list)
    waited: bool = True

    def describe(self) -> str:
        if not self.waited:
            return "not waited for"
        if self.workers == 0:
            return "no server is running; servers apply it when they start"
        noun = "worker" if self.workers == 1 else "workers"
        places = len(set(self.replicas))
        where = "" if places <= 1 else f" on {places} replicas"
        return f"applied by {self.workers} {noun}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "replicas": sorted(set(self.replicas))}


class WorkerReporter:
    """One serving worker's reports (blocking: call it off the event loop)."""

    def __init__(self, store: Store, replica: str, worker: str | None = None) -> None:
        self.rows = _rows(store)
        self.replica = replica
        if not worker:
            from plinth.services.process import worker_id

            worker = worker_id()
        self.worker = worker
        self._beats = 0

    def heartbeat(self) -> None:
        now = datetime.now(UTC)
        self.rows.heartbeat(self.worker, self.replica, now)
        self._beats += 1
        if self._beats % 100 == 1:  # now and then, clear out killed workers' rows
            self.rows.forget_stale(now - timedelta(seconds=STALE_S))

    def report(
        self,
        name: str,
        *,
        revision_id: int | None,
        revision: int | None,
        error: Mapping[str, Any] | None,
        contracts: Mapping[str, int],
    ) -> None:
        self.rows.report(
            self.worker,
            name,
            revision_id=revision_id,
            revision=revision,
            state=APPLIED if error is None else FAILED,
            error=None if error is None else dict(error),
            contracts=contracts,
            now=datetime.now(UTC),
        )

    def forget(self) -> None:
        self.rows.forget(self.worker)


def live_states(store: Store, name: str | None = None) -> list[WorkerState]:
    """What every live worker reports (for ``name``, or for all models)."""
    since = datetime.now(UTC) - timedelta(seconds=LIVE_S)
    return _rows(store).states(since, name)


def wait_for_revision(
    store: Store,
    name: str,
    revision_id: int,
    revision: int,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Applied:
    """Wait until every live worker applied revision ``revision_id`` (or a later one) of
    ``name``; raise ``deploy.not_applied`` with each failing worker's load error, or
    ``deploy.apply_timeout`` naming the workers that did not report in time."""

    def verdict(state: WorkerState | None) -> str | None:
        if state is None or state.revision_id is None or state.revision_id < revision_id:
            return None
        if state.state == FAILED and state.revision_id == revision_id:
            return FAILED
        return APPLIED

    return _wait(
        store,
        name,
        timeout_s,
        verdict,
        what=f"revision {revision} of {name}",
        sleep=sleep,
    )


def wait_for_contract(
    store: Store,
    name: str,
    version: int,
    revision: int,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Applied:
    """Wait until every live worker that has ``name:version`` loaded serves contract revision
    ``revision`` (a worker without it loaded reads the new contract when it loads it)."""
    key = str(version)

    def verdict(state: WorkerState | None) -> str | None:
        if state is None:
            return APPLIED  # never loaded this model: nothing to reload
        served = state.contracts.get(key)
        return APPLIED if served is None or served >= revision else None

    return _wait(
        store,
        name,
        timeout_s,
        verdict,
        what=f"contract revision {revision} of {name}:{version}",
        sleep=sleep,
    )


def _wait(
    store: Store,
    name: str,
    timeout_s: float,
    verdict: Callable[[WorkerState | None], str | None],
    *,
    what: str,
    sleep: Callable[[float], None],
) -> Applied:
    rows = _rows(store)
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        since = datetime.now(UTC) - timedelta(seconds=LIVE_S)
        live = rows.live_workers(since)
        by_worker = {s.worker: s for s in rows.states(since, name)}
        pending: list[str] = []
        failed: list[WorkerState] = []
        for worker in sorted(live):
            outcome = verdict(by_worker.get(worker))
            if outcome is None:
                pending.append(worker)
            elif outcome == FAILED:
                failed.append(by_worker[worker])
        if not pending and failed:
            raise _not_applied(what, failed, len(live))
        if not pending:
            return Applied(len(live), list(live.values()))
        if time.monotonic() >= deadline:
            problems = [
                Problem(
                    WORKER_PENDING,
                    f"worker {worker} (replica {live[worker]}) has not applied {what}",
                    "Its log says why; it may still be loading a large model.",
                    field=worker,
                )
                for worker in pending
            ]
            problems += _failures(failed)
            raise ApplyTimeoutError(
                f"{len(pending)} of {len(live)} live workers did not report {what} applied "
                f"within {timeout_s:g} s.",
                problems=problems,
            )
        sleep(POLL_S)


def _failures(failed: list[WorkerState]) -> list[Problem]:
    problems = []
    for state in failed:
        error = state.error or {}
        problems.append(
            Problem(
                str(error.get("code") or "deploy.not_applied"),
                f"worker {state.worker} (replica {state.replica}): "
                f"{error.get('message') or 'could not apply the revision'}",
                str(error.get("hint") or ""),
                field=state.worker,
            )
        )
    return problems


def _not_applied(what: str, failed: list[WorkerState], live: int) -> RevisionNotAppliedError:
    first = (failed[0].error or {}) if failed else {}
    code = first.get("code")
    reason = f" [{code}] {first.get('message', '')}".rstrip() if code else ""
    hint = str(first.get("hint") or "")
    return RevisionNotAppliedError(
        f"{len(failed)} of {live} live workers could not apply {what}; they keep serving the "
        f"revision before it.{reason}",
        hint=(
            f"{hint} Then deploy again, or `plinth rollback NAME` to record the revision "
            "they serve."
        ).strip()
        if hint
        else None,
        problems=_failures(failed),
    )
