"""SQL for the audit trail: append one admin action, read them back newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.store.schema import audit_events
from plinth.store.store import Store, _aware


@dataclass(frozen=True)
class AuditEvent:
    """One admin action: who did what to which target, when, with its details."""

    at: datetime
    who: str
    action: str
    target: str
    detail: dict[str, Any]
    id: int = 0


class AuditStore:
    """The ``audit_events`` table over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(self, event: AuditEvent) -> None:
        with self.store.writing() as conn:
            conn.execute(
                audit_events.insert().values(
                    at=_aware(event.at, "at"),
                    who=event.who,
                    action=event.action,
                    target=event.target,
                    detail=event.detail,
                )
            )

    def read(
        self, *, limit: int = 100, action: str | None = None, since: datetime | None = None
    ) -> list[AuditEvent]:
        """The newest ``limit`` events (of ``action``, from ``since``), newest first."""
        query = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if action is not None:
            query = query.where(audit_events.c.action == action)
        if since is not None:
            query = query.where(audit_events.c.at >= _aware(since, "since"))
        with self.store.reading() as conn:
            rows = conn.execute(query).all()
        return [AuditEvent(r.at, r.who, r.action, r.target, dict(r.detail), id=r.id) for r in rows]
