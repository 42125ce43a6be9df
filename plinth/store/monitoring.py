"""SQL for monitoring: interval rows, alerts and leases (the only SQL monitoring runs).

Interval rows are written once per interval per worker and never updated; readers merge the
rows of one interval by adding their counts, so workers and replicas never coordinate.
Alerts are few and updated in place. A lease is one row per background job with a holder
and an expiry; taking it is a single conditional UPDATE, atomic on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from plinth.store.schema import alerts, interval_profiles, leases
from plinth.store.store import Store, _aware


@dataclass(frozen=True)
class IntervalRow:
    """One worker's numbers for one interval of one model version."""

    model: str
    version: int
    start: datetime
    seconds: float
    worker: str
    requests: int
    records: int
    errors: dict[str, int]
    validation_failures: int
    problems: dict[str, int]
    latency: bytes
    counts: bytes | None
    sums: bytes | None


@dataclass(frozen=True)
class AlertRow:
    """An alert as stored: ``state`` is firing or resolved."""

    id: int
    model: str
    version: int | None
    rule: str
    key: str
    state: str
    summary: str
    evidence: dict[str, Any]
    started_at: datetime
    last_true_at: datetime
    resolved_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "rule": self.rule,
            "key": self.key,
            "state": self.state,
            "summary": self.summary,
            "evidence": self.evidence,
            "started_at": self.started_at.isoformat(),
            "last_true_at": self.last_true_at.isoformat(),
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
        }


_INTERVAL_COLUMNS = [c for c in interval_profiles.c if c.name != "id"]


class MonitoringStore:
    """Interval profiles, alerts and leases over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- interval profiles --------------------------------------------------------------------

    def insert_intervals(self, rows: Sequence[IntervalRow]) -> None:
        if not rows:
            return
        values = [
            {c.name: getattr(r, c.name) for c in _INTERVAL_COLUMNS}
            | {"start": _aware(r.start, "start")}
            for r in rows
        ]
        with self.store._write() as conn:
            conn.execute(interval_profiles.insert(), values)

    def read_intervals(
        self, model: str, version: int | None, start: datetime, end: datetime
    ) -> list[IntervalRow]:
        """Rows whose interval starts in [start, end), oldest first."""
        query = (
            sa.select(*_INTERVAL_COLUMNS)
            .where(
                interval_profiles.c.model == model,
                interval_profiles.c.start >= _aware(start, "start"),
                interval_profiles.c.start < _aware(end, "end"),
            )
            .order_by(interval_profiles.c.start)
        )
        if version is not None:
            query = query.where(interval_profiles.c.version == version)
        with self.store._read() as conn:
            # Positional: the columns are selected in the dataclass's field order.
            return [IntervalRow(*row) for row in conn.execute(query)]

    def versions_with_intervals(self, model: str, start: datetime, end: datetime) -> list[int]:
        query = (
            sa.select(interval_profiles.c.version)
            .where(
                interval_profiles.c.model == model,
                interval_profiles.c.start >= _aware(start, "start"),
                interval_profiles.c.start < _aware(end, "end"),
            )
            .distinct()
            .order_by(interval_profiles.c.version)
        )
        with self.store._read() as conn:
            return [int(v) for v in conn.execute(query).scalars()]

    def prune_intervals(self, older_than: datetime) -> int:
        with self.store._write() as conn:
            done = conn.execute(
                interval_profiles.delete().where(
                    interval_profiles.c.start < _aware(older_than, "older_than")
                )
            )
        return int(done.rowcount)

    # -- alerts -----------------------------------------------------------------------------

    def open_alerts(self, model: str | None = None) -> list[AlertRow]:
        query = sa.select(alerts).where(alerts.c.state == "firing").order_by(alerts.c.id)
        if model is not None:
            query = query.where(alerts.c.model == model)
        with self.store._read() as conn:
            return [_alert(r) for r in conn.execute(query)]

    def list_alerts(self, model: str, since: datetime, limit: int = 100) -> list[AlertRow]:
        """Alerts still firing, or active at any time since ``since``; newest first."""
        since = _aware(since, "since")
        query = (
            sa.select(alerts)
            .where(
                alerts.c.model == model,
                sa.or_(alerts.c.state == "firing", alerts.c.last_true_at >= since),
            )
            .order_by(alerts.c.id.desc())
            .limit(limit)
        )
        with self.store._read() as conn:
            return [_alert(r) for r in conn.execute(query)]

    def fire(
        self,
        *,
        model: str,
        version: int | None,
        rule: str,
        key: str,
        summary: str,
        evidence: dict[str, Any],
        at: datetime,
    ) -> AlertRow:
        at = _aware(at, "at")
        with self.store._write() as conn:
            new_id = conn.execute(
                alerts.insert()
                .values(
                    model=model,
                    version=version,
                    rule=rule,
                    key=key,
                    state="firing",
                    summary=summary,
                    evidence=evidence,
                    started_at=at,
                    last_true_at=at,
                )
                .returning(alerts.c.id)
            ).scalar_one()
        return AlertRow(int(new_id), model, version, rule, key, "firing", summary, evidence, at, at)

    def still_firing(
        self, alert_id: int, *, summary: str, evidence: dict[str, Any], at: datetime
    ) -> None:
        with self.store._write() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(summary=summary, evidence=evidence, last_true_at=_aware(at, "at"))
            )

    def resolve(self, alert_id: int, at: datetime) -> AlertRow:
        with self.store._write() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(state="resolved", resolved_at=_aware(at, "at"))
            )
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
        return _alert(row)

    # -- leases -----------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        """Take or renew lease ``name`` until ``expires_at``; False if someone else holds it.

        Insert-if-absent, then one UPDATE that only matches when the lease is ours or has
        expired: whichever process commits first wins, on either backend.
        """
        now, expires_at = _aware(now, "now"), _aware(expires_at, "expires_at")
        dialect = pg.insert if self.store.dialect == "postgresql" else sqlite.insert
        with self.store._write() as conn:
            conn.execute(
                dialect(leases)
                .values(name=name, holder=holder, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            taken = conn.execute(
                leases.update()
                .where(
                    leases.c.name == name,
                    sa.or_(leases.c.holder == holder, leases.c.expires_at < now),
                )
                .values(holder=holder, expires_at=expires_at)
            )
        return bool(taken.rowcount)

    def release_lease(self, name: str, holder: str) -> None:
        with self.store._write() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


def _alert(row: sa.Row[Any]) -> AlertRow:
    m = row._mapping
    return AlertRow(
        id=int(m["id"]),
        model=m["model"],
        version=m["version"],
        rule=m["rule"],
        key=m["key"],
        state=m["state"],
        summary=m["summary"],
        evidence=m["evidence"],
        started_at=m["started_at"],
        last_true_at=m["last_true_at"],
        resolved_at=m["resolved_at"],
    )
