"""SQL for retraining: the job table, its leases, and labelled traffic as of a cut-off.

A job moves ``queued -> running -> succeeded | rejected | failed`` by single conditional
UPDATEs, so two workers racing for one job cannot both win: on SQLite writers are serialised,
on PostgreSQL the loser's UPDATE re-reads the row after the winner commits and matches
nothing. At most one job per model is queued or running (a partial unique index), so a
trigger firing during a run inserts nothing. A running job carries a lease (``holder``,
``lease_until``) its worker renews; ``expire`` fails jobs whose lease ran out, and a worker
that lost its lease can neither finish the job nor register a version for it (the
registration's transaction checks the lease, see ``registration_guard``).

Labelled traffic is read point-in-time: the features as they were served (the prediction
log's repaired features) with the label as Plinth knew it at the cut-off: a label received
later is left out, or, when it replaced an earlier one, the earlier one is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from plinth.errors import JobLeaseLostError, StoreConflictError
from plinth.store.schema import label_history, labels, predictions, training_jobs
from plinth.store.store import Store, _aware

ACTIVE: Final = ("queued", "running")
FINISHED: Final = ("succeeded", "rejected", "failed")
_IN_CHUNK = 900


@dataclass(frozen=True)
class JobRow:
    """One training job as stored."""

    id: str
    model: str
    state: str
    trigger: str
    reason: str
    dry_run: bool
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    holder: str | None = None
    lease_until: datetime | None = None
    parent_version: int | None = None
    version: int | None = None
    outcome: str | None = None
    data: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def stage(self) -> str | None:
        """The step the job is in (or, once finished, the last one it reached): kept in
        ``data`` with when each step began (``data["stages"]``), so progress needs no column."""
        found = (self.data or {}).get("stage")
        return None if found is None else str(found)

    def stage_times(self) -> list[tuple[str, datetime, datetime | None]]:
        """Each step reached, when it began and when it ended (None: still running)."""
        stages = [
            (str(name), _as_aware(at))
            for name, at in ((self.data or {}).get("stages") or {}).items()
        ]
        if not stages:
            return []
        ends: list[datetime | None] = [at for _, at in stages[1:]]
        ends.append(self.finished_at)
        return [(name, at, end) for (name, at), end in zip(stages, ends, strict=True)]


@dataclass(frozen=True)
class LabelledRow:
    """One labelled prediction as known at a cut-off: features as served, label as known."""

    prediction_id: str
    ts: datetime
    version: int
    features: dict[str, Any]
    label: Any
    received_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingStore:
    """Training jobs and the labelled traffic they train on, over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- jobs ---------------------------------------------------------------------------------

    def enqueue(self, job: JobRow) -> tuple[JobRow, bool]:
        """Insert ``job`` as queued; if the model already has a queued or running job, that
        job and False (nothing inserted), whoever raced us to it."""
        values = _values(job) | {"state": "queued"}
        try:
            with self.store.writing() as conn:
                conn.execute(training_jobs.insert().values(**values))
        except StoreConflictError:
            active = self.active(job.model)
            if active is None:  # it finished between our insert and this read: try again
                return self.enqueue(job)
            return active, False
        return self.get(job.id), True

    def get(self, job_id: str) -> JobRow:
        found = self.find(job_id)
        if found is None:
            from plinth.errors import JobNotFoundError

            raise JobNotFoundError(f"no training job with id {job_id!r}")
        return found

    def find(self, job_id: str) -> JobRow | None:
        with self.store.reading() as conn:
            row = conn.execute(sa.select(training_jobs).where(training_jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def active(self, model: str) -> JobRow | None:
        """The model's queued or running job, if any."""
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(training_jobs).where(
                    training_jobs.c.model == model, training_jobs.c.state.in_(ACTIVE)
                )
            ).first()
        return None if row is None else _job(row)

    def jobs(self, model: str | None = None, limit: int = 50) -> list[JobRow]:
        """Newest first."""
        query = sa.select(training_jobs).order_by(training_jobs.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(training_jobs.c.model == model)
        with self.store.reading() as conn:
            return [_job(r) for r in conn.execute(query)]

    def last_created(self, model: str, triggers: Sequence[str] | None = None) -> datetime | None:
        """When the model's newest job (of these triggers) was created: the cool-down's clock."""
        query = sa.select(sa.func.max(training_jobs.c.created_at)).where(
            training_jobs.c.model == model
        )
        if triggers is not None:
            query = query.where(training_jobs.c.trigger.in_(list(triggers)))
        with self.store.reading() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else _as_aware(value)

    def last_trained(self, model: str) -> datetime | None:
        """When the newest job that got as far as training started (the labels trigger
        counts labels since then)."""
        query = sa.select(sa.func.max(training_jobs.c.started_at)).where(
            training_jobs.c.model == model, training_jobs.c.dry_run.is_(False)
        )
        with self.store.reading() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else _as_aware(value)

    def claim(
        self, holder: str, now: datetime, until: datetime, model: str | None = None
    ) -> JobRow | None:
        """Take the oldest queued job (of ``model``) and mark it running under our lease."""
        now, until = _aware(now, "now"), _aware(until, "until")
        query = (
            sa.select(training_jobs.c.id)
            .where(training_jobs.c.state == "queued")
            .order_by(training_jobs.c.id)
            .limit(5)
        )
        if model is not None:
            query = query.where(training_jobs.c.model == model)
        with self.store.reading() as conn:
            candidates = [r.id for r in conn.execute(query)]
        for job_id in candidates:
            with self.store.writing() as conn:
                taken = conn.execute(
                    training_jobs.update()
                    .where(training_jobs.c.id == job_id, training_jobs.c.state == "queued")
                    .values(state="running", holder=holder, lease_until=until, started_at=now)
                )
            if taken.rowcount:
                return self.get(job_id)
        return None

    def renew(self, job_id: str, holder: str, until: datetime, **changes: Any) -> bool:
        """Extend our lease (and store progress such as ``data``); False if we lost it."""
        with self.store.writing() as conn:
            done = conn.execute(
                _ours(job_id, holder).values(lease_until=_aware(until, "until"), **changes)
            )
        return bool(done.rowcount)

    def finish(self, job_id: str, holder: str, state: str, now: datetime, **changes: Any) -> bool:
        """End our running job in ``state``; False (nothing written) if we lost the lease."""
        if state not in FINISHED:
            raise ValueError(f"{state!r} is not a final state")
        with self.store.writing() as conn:
            done = conn.execute(
                _ours(job_id, holder).values(
                    state=state, finished_at=_aware(now, "now"), lease_until=None, **changes
                )
            )
        return bool(done.rowcount)

    def set_outcome(self, job_id: str, outcome: str) -> None:
        """Record how the finished job's version fared afterwards (canary, promoted...)."""
        with self.store.writing() as conn:
            conn.execute(
                training_jobs.update().where(training_jobs.c.id == job_id).values(outcome=outcome)
            )

    def with_outcome(self, model: str, outcomes: Sequence[str]) -> list[JobRow]:
        """The model's finished jobs whose rollout is still in one of ``outcomes``."""
        query = (
            sa.select(training_jobs)
            .where(training_jobs.c.model == model, training_jobs.c.outcome.in_(list(outcomes)))
            .order_by(training_jobs.c.id.desc())
        )
        with self.store.reading() as conn:
            return [_job(r) for r in conn.execute(query)]

    def expire(self, now: datetime) -> list[JobRow]:
        """Fail every running job whose lease ran out (its worker died); returns them."""
        now = _aware(now, "now")
        error = {
            "code": JobLeaseLostError.code,
            "message": "The worker running this job stopped renewing its lease "
            "(killed or cut off from the store); nothing was registered after that.",
            "hint": JobLeaseLostError.hint,
        }
        with self.store.writing() as conn:
            stale = [
                r.id
                for r in conn.execute(
                    sa.select(training_jobs.c.id).where(
                        training_jobs.c.state == "running", training_jobs.c.lease_until < now
                    )
                )
            ]
            for job_id in stale:
                conn.execute(
                    training_jobs.update()
                    .where(
                        training_jobs.c.id == job_id,
                        training_jobs.c.state == "running",
                        training_jobs.c.lease_until < now,
                    )
                    .values(state="failed", finished_at=now, lease_until=None, error=error)
                )
        return [self.get(job_id) for job_id in stale]

    def registration_guard(
        self, job_id: str, holder: str, now: datetime
    ) -> Callable[[Connection, int], None]:
        """A check run inside the registration's transaction: the job is still ours (its
        lease unexpired) and now names the version; otherwise the registration rolls back,
        so a worker that lost its lease never leaves a version behind."""
        now = _aware(now, "now")

        def guard(conn: Connection, version: int) -> None:
            done = conn.execute(
                _ours(job_id, holder)
                .where(training_jobs.c.lease_until >= now)
                .values(version=version)
            )
            if not done.rowcount:
                raise JobLeaseLostError(
                    f"job {job_id} is no longer held by {holder}; not registering its version"
                )

        return guard

    # -- labelled traffic ---------------------------------------------------------------------

    def labelled_traffic(
        self, model: str, start: datetime, cutoff: datetime, limit: int | None = None
    ) -> list[LabelledRow]:
        """Predictions made in [start, cutoff) with the label known at ``cutoff``, oldest
        first (at most ``limit``, the newest ones kept)."""
        start, cutoff = _aware(start, "start"), _aware(cutoff, "cutoff")
        query = (
            sa.select(
                predictions.c.id,
                predictions.c.ts,
                predictions.c.version,
                predictions.c.input,
                predictions.c.features,
                labels.c.label,
                labels.c.received_at,
            )
            .join(labels, labels.c.prediction_id == predictions.c.id)
            .where(
                labels.c.model == model,
                labels.c.prediction_ts >= start,
                labels.c.prediction_ts < cutoff,
                predictions.c.model == model,
                predictions.c.ts >= start,
                predictions.c.ts < cutoff,
            )
            .order_by(predictions.c.ts.desc(), predictions.c.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        layouts = self.store.layouts
        found: list[LabelledRow] = []
        late: dict[str, Any] = {}
        with self.store.reading() as conn:
            rows = conn.execute(query).all()
            for r in rows:
                features = layouts.input_and_features(model, r.version, r.input, r.features)[1]
                row = LabelledRow(
                    r.id, r.ts, r.version, features, _dec(r.label), _as_aware(r.received_at)
                )
                if row.received_at <= cutoff:
                    found.append(row)
                else:
                    late[r.id] = row
            # A label received after the cut-off: the one it replaced, if that was known.
            ids = list(late)
            for part in range(0, len(ids), _IN_CHUNK):
                history = conn.execute(
                    sa.select(label_history)
                    .where(
                        label_history.c.prediction_id.in_(ids[part : part + _IN_CHUNK]),
                        label_history.c.received_at <= cutoff,
                        label_history.c.replaced_at > cutoff,
                    )
                    .order_by(label_history.c.revision)
                )
                known: dict[str, Any] = {}
                for h in history:
                    known[h.prediction_id] = h
                for pid, h in known.items():
                    was = late[pid]
                    found.append(
                        LabelledRow(
                            pid,
                            was.ts,
                            was.version,
                            was.features,
                            _dec(h.label),
                            _as_aware(h.received_at),
                        )
                    )
        found.sort(key=lambda r: (r.ts, r.prediction_id))
        return found

    def labels_received(self, model: str, since: datetime | None, until: datetime) -> int:
        """Labels of ``model`` received in [since, until): what the labels trigger counts."""
        query = sa.select(sa.func.count()).where(
            labels.c.model == model, labels.c.received_at < _aware(until, "until")
        )
        if since is not None:
            query = query.where(labels.c.received_at >= _aware(since, "since"))
        with self.store.reading() as conn:
            count: int = conn.execute(query).scalar_one()
        return count


def _ours(job_id: str, holder: str) -> sa.Update:
    return training_jobs.update().where(
        training_jobs.c.id == job_id,
        training_jobs.c.holder == holder,
        training_jobs.c.state == "running",
    )


def _values(job: JobRow) -> dict[str, Any]:
    values = {
        "id": job.id,
        "model": job.model,
        "state": job.state,
        "trigger": job.trigger,
        "reason": job.reason,
        "dry_run": job.dry_run,
        "created_at": _aware(job.created_at, "created_at"),
        "parent_version": job.parent_version,
        "data": job.data,
    }
    return values


def _job(row: Any) -> JobRow:
    m = dict(row._mapping)
    for key in ("created_at", "started_at", "finished_at", "lease_until"):
        if m[key] is not None:
            m[key] = _as_aware(m[key])
    m["dry_run"] = bool(m["dry_run"])
    return JobRow(**m)


def _as_aware(value: Any) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(stamp, datetime)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _dec(text: str) -> Any:
    return orjson.loads(text)
