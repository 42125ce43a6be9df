"""SQL for what each serving worker applied, and for contract edits as revisions.

Serving workers (in one process, many, or many replicas) share nothing but the store, so
they write down what they serve: a heartbeat (``workers``), and per model the deployment
revision they applied or failed to apply, with the load error (``worker_states``). A
``plinth deploy`` waits on these rows; the ``deployment_not_applied`` alert reads them.

A contract edit replaces the version's metadata and appends a ``contract_revisions`` row in
the same transaction; workers poll ``max(id)`` of that table beside the deployments' counter
(and hear the same PostgreSQL notification), so an edit reaches every worker like a
deployment does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.store.deployments import CHANNEL
from plinth.store.records import VersionRecord
from plinth.store.schema import contract_revisions, deployment_revisions, model_versions
from plinth.store.schema import worker_states as states
from plinth.store.schema import workers as heartbeats
from plinth.store.store import Store, _aware, _version


@dataclass(frozen=True)
class ContractEdit:
    """One recorded contract edit."""

    id: int
    name: str
    version: int
    revision: int


@dataclass(frozen=True)
class WorkerState:
    """What one live worker reported for one model."""

    worker: str
    replica: str
    name: str
    revision_id: int | None
    revision: int | None
    state: str  # applied | failed
    error: dict[str, Any] | None
    contracts: dict[str, int]
    updated_at: datetime


class WorkerStore:
    """Heartbeats, per-model worker states and contract revisions through the one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- change counters --------------------------------------------------------------------

    def counters(self) -> tuple[int, int]:
        """(max deployment revision id, max contract revision id): one read, polled by every
        worker several times a second; either grows on a change."""
        query = sa.select(
            sa.select(sa.func.max(deployment_revisions.c.id)).scalar_subquery(),
            sa.select(sa.func.max(contract_revisions.c.id)).scalar_subquery(),
        )
        with self.store.reading() as conn:
            deployed, edited = conn.execute(query).one()
        return int(deployed or 0), int(edited or 0)

    def contract_edits_since(self, after_id: int) -> list[ContractEdit]:
        with self.store.reading() as conn:
            rows = conn.execute(
                sa.select(contract_revisions).where(contract_revisions.c.id > after_id)
            ).all()
        return [ContractEdit(r.id, r.name, r.version, r.revision) for r in rows]

    def record_contract(
        self,
        name: str,
        version: int,
        metadata: Mapping[str, Any],
        *,
        revision: int,
        who: str,
        reason: str,
        at: datetime,
    ) -> VersionRecord:
        """Store the edited metadata and its contract revision in one transaction, and wake
        every listening worker (PostgreSQL)."""
        key = (model_versions.c.name == name, model_versions.c.version == version)
        with self.store.writing() as conn:
            conn.execute(model_versions.update().where(*key).values(metadata=dict(metadata)))
            conn.execute(
                contract_revisions.insert().values(
                    name=name,
                    version=version,
                    revision=revision,
                    who=who,
                    reason=reason,
                    created_at=_aware(at, "at"),
                )
            )
            if self.store.dialect == "postgresql":
                conn.execute(sa.text(f"NOTIFY {CHANNEL}"))
            row = conn.execute(sa.select(model_versions).where(*key)).one()
        return _version(row)

    # -- workers ----------------------------------------------------------------------------

    def heartbeat(self, worker: str, replica: str, now: datetime) -> None:
        """Say this worker is alive (first call registers it)."""
        now = _aware(now, "now")
        with self.store.writing() as conn:
            seen = conn.execute(
                heartbeats.update().where(heartbeats.c.worker == worker).values(seen_at=now)
            )
            if seen.rowcount == 0:
                conn.execute(
                    heartbeats.insert().values(
                        worker=worker, replica=replica, started_at=now, seen_at=now
                    )
                )

    def report(
        self,
        worker: str,
        name: str,
        *,
        revision_id: int | None,
        revision: int | None,
        state: str,
        error: dict[str, Any] | None,
        contracts: Mapping[str, int],
        now: datetime,
    ) -> None:
        """Replace what ``worker`` reports for model ``name``."""
        with self.store.writing() as conn:
            conn.execute(states.delete().where(states.c.worker == worker, states.c.name == name))
            conn.execute(
                states.insert().values(
                    worker=worker,
                    name=name,
                    revision_id=revision_id,
                    revision=revision,
                    state=state,
                    error=error,
                    contracts=dict(contracts),
                    updated_at=_aware(now, "now"),
                )
            )

    def forget(self, worker: str) -> None:
        """A worker that stops cleanly is no longer waited for."""
        with self.store.writing() as conn:
            conn.execute(states.delete().where(states.c.worker == worker))
            conn.execute(heartbeats.delete().where(heartbeats.c.worker == worker))

    def forget_stale(self, before: datetime) -> int:
        """Drop workers (and their states) not seen since ``before`` (killed, not stopped)."""
        before = _aware(before, "before")
        with self.store.writing() as conn:
            stale = sa.select(heartbeats.c.worker).where(heartbeats.c.seen_at < before)
            conn.execute(states.delete().where(states.c.worker.in_(stale)))
            return int(
                conn.execute(heartbeats.delete().where(heartbeats.c.seen_at < before)).rowcount
            )

    def live_workers(self, since: datetime) -> dict[str, str]:
        """Workers seen at or after ``since``: worker id → replica."""
        with self.store.reading() as conn:
            rows = conn.execute(
                sa.select(heartbeats.c.worker, heartbeats.c.replica).where(
                    heartbeats.c.seen_at >= _aware(since, "since")
                )
            ).all()
        return {r.worker: r.replica for r in rows}

    def states(self, since: datetime, name: str | None = None) -> list[WorkerState]:
        """What each live worker reports, for ``name`` or for every model."""
        query = (
            sa.select(states, heartbeats.c.replica)
            .join(heartbeats, heartbeats.c.worker == states.c.worker)
            .where(heartbeats.c.seen_at >= _aware(since, "since"))
        )
        if name is not None:
            query = query.where(states.c.name == name)
        with self.store.reading() as conn:
            rows = conn.execute(query.order_by(states.c.worker)).all()
        return [
            WorkerState(
                worker=r.worker,
                replica=r.replica,
                name=r.name,
                revision_id=r.revision_id,
                revision=r.revision,
                state=r.state,
                error=r.error,
                contracts={str(k): int(v) for k, v in (r.contracts or {}).items()},
                updated_at=r.updated_at,
            )
            for r in rows
        ]
