"""SQL for deployments: an append-only list of revisions per model name.

The store does not know what a spec means; it numbers revisions safely across processes and
hands back plain records. ``change_counter`` is ``max(id)`` over every revision: one indexed
read that every serving worker polls several times a second to notice a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Row

from plinth.store.notifications import Listener
from plinth.store.schema import deployment_revisions as revisions
from plinth.store.store import Store, _aware

APPEND_ATTEMPTS: Final = 5
CHANNEL: Final = "plinth_deployments"  # NOTIFY'd on every committed revision (PostgreSQL)


@dataclass(frozen=True)
class RevisionRecord:
    """One stored revision of one model's deployment."""

    id: int
    name: str
    revision: int
    spec: dict[str, Any]
    action: str
    who: str
    reason: str
    created_at: datetime
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewRevision:
    """What a caller wants appended; the store assigns ``id`` and ``revision``."""

    spec: dict[str, Any]
    action: str
    who: str
    reason: str
    created_at: datetime
    evidence: dict[str, Any] | None = None


class DeploymentStore:
    """Reads and appends deployment revisions through the one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def listen(self, on_change: Callable[[], None]) -> Listener | None:
        """On PostgreSQL, call ``on_change`` (from a thread) whenever a revision is committed;
        None elsewhere. Polling ``change_counter`` stays the source of truth: a notification
        only makes the poll happen now."""
        if self.store.dialect != "postgresql":
            return None
        return Listener(self.store.url, CHANNEL, on_change)

    def append(
        self, name: str, build: Callable[[RevisionRecord | None], NewRevision]
    ) -> RevisionRecord:
        """Append ``build(latest)`` as the next revision of ``name``, atomically.

        ``build`` runs inside the write transaction with the newest revision, so a promote or
        rollback computed from it cannot interleave with another change. SQLite serialises
        writers (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock on the
        name does the same, and a unique violation from any remaining race is retried.
        """
        with self.store.translated_errors("record a deployment revision"):
            for attempt in range(1, APPEND_ATTEMPTS + 1):
                try:
                    with self.store.write_engine.begin() as conn:
                        if self.store.dialect == "postgresql":
                            # Serialise appends per model name (SQLite's BEGIN IMMEDIATE
                            # already does); the unique constraint stays as the backstop.
                            conn.execute(
                                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                                {"key": f"plinth.deployments:{name}"},
                            )
                        latest = conn.execute(_latest_query(name)).first()
                        current = None if latest is None else _record(latest)
                        new = build(current)
                        number = 1 if current is None else current.revision + 1
                        created_at = _aware(new.created_at, "created_at")
                        inserted = conn.execute(
                            revisions.insert()
                            .values(
                                name=name,
                                revision=number,
                                spec=new.spec,
                                action=new.action,
                                who=new.who,
                                reason=new.reason,
                                created_at=created_at,
                                evidence=new.evidence,
                            )
                            .returning(revisions.c.id)
                        ).scalar_one()
                        if self.store.dialect == "postgresql":
                            # Delivered on commit to every listening worker (notifications).
                            conn.execute(sa.text(f"NOTIFY {CHANNEL}"))
                        return RevisionRecord(
                            id=int(inserted),
                            name=name,
                            revision=number,
                            spec=new.spec,
                            action=new.action,
                            who=new.who,
                            reason=new.reason,
                            created_at=created_at,
                            evidence=new.evidence,
                        )
                except exc.IntegrityError:
                    if attempt == APPEND_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def latest(self, name: str) -> RevisionRecord | None:
        """The live revision of ``name``, or None when it was never deployed."""
        with self.store.reading() as conn:
            row = conn.execute(_latest_query(name)).first()
        return None if row is None else _record(row)

    def get(self, name: str, revision: int) -> RevisionRecord | None:
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(revisions).where(
                    revisions.c.name == name, revisions.c.revision == revision
                )
            ).first()
        return None if row is None else _record(row)

    def history(self, name: str, limit: int = 1000) -> list[RevisionRecord]:
        """Revisions of ``name``, newest first."""
        with self.store.reading() as conn:
            rows = conn.execute(
                sa.select(revisions)
                .where(revisions.c.name == name)
                .order_by(revisions.c.revision.desc())
                .limit(limit)
            ).all()
        return [_record(row) for row in rows]

    def live(self) -> list[RevisionRecord]:
        """The newest revision of every deployed model."""
        newest = (
            sa.select(revisions.c.name, sa.func.max(revisions.c.revision).label("top"))
            .group_by(revisions.c.name)
            .subquery()
        )
        query = sa.select(revisions).join(
            newest,
            sa.and_(revisions.c.name == newest.c.name, revisions.c.revision == newest.c.top),
        )
        with self.store.reading() as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]

    def change_counter(self) -> int:
        """Grows on every change to any deployment; 0 when nothing was ever deployed."""
        with self.store.reading() as conn:
            value = conn.execute(sa.select(sa.func.max(revisions.c.id))).scalar_one()
        return 0 if value is None else int(value)


def _latest_query(name: str) -> sa.Select[Any]:
    return (
        sa.select(revisions)
        .where(revisions.c.name == name)
        .order_by(revisions.c.revision.desc())
        .limit(1)
    )


def _record(row: Row[Any]) -> RevisionRecord:
    m = row._mapping
    return RevisionRecord(
        id=m["id"],
        name=m["name"],
        revision=m["revision"],
        spec=m["spec"],
        action=m["action"],
        who=m["who"],
        reason=m["reason"],
        created_at=m["created_at"],
        evidence=m["evidence"],
    )
