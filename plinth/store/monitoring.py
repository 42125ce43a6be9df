"""SQL for monitoring: interval rows, alerts and leases (the only SQL monitoring runs).

Interval rows are written once per interval per worker and never updated; readers merge the
rows of one interval by adding their counts, so workers and replicas never coordinate.

Old rows are rolled up: in one transaction the sub-hour rows of finished hours are deleted
(``DELETE ... RETURNING``, so a transaction only ever merges rows it removed itself) and
one row per (model, version, hour) is written in their place, in the same table. A reader's
single SELECT therefore sees either the minute rows or their roll-up, never both, and two
roll-ups racing each other cannot count a row twice; roll-up transactions are serialised
(an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite) so each hour keeps one row.

Alerts are few and updated in place. A lease is one row per background job with a holder
and an expiry; taking it is a single conditional UPDATE, atomic on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import sqlalchemy as sa

from plinth.core.interval import FLOAT_DTYPE, Usage, decode_counts, encode_counts
from plinth.store.schema import alerts, interval_profiles, leases
from plinth.store.store import PRUNE_CHUNK_ROWS, Store, _aware

#: Length of a roll-up row. Rows shorter than this are "minute rows" (whatever the
#: collector's interval) and get rolled up; rows this long or longer are left as they are.
ROLLUP_SECONDS: Final = 3600.0
ROLLUP_WORKER: Final = "rollup"
# Serialises roll-up transactions on PostgreSQL ("rollup" in ASCII); SQLite's BEGIN
# IMMEDIATE already does. Writers of minute rows never take it.
ROLLUP_LOCK_KEY: Final = 0x726F6C6C7570

log = logging.getLogger("plinth.monitoring")


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
    usage: dict[str, Any] | None = None  # a remote model's calls, tokens and cost (Usage)


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
        with self.store.writing() as conn:
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
        with self.store.reading() as conn:
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
        with self.store.reading() as conn:
            return [int(v) for v in conn.execute(query).scalars()]

    def usage_by_version(self, model: str, start: datetime, end: datetime) -> dict[int, Usage]:
        """A remote model's calls, tokens and cost per version over [start, end): only the
        ``usage`` column is read, never the profile blobs."""
        c = interval_profiles.c
        query = sa.select(c.version, c.usage).where(
            c.model == model,
            c.start >= _aware(start, "start"),
            c.start < _aware(end, "end"),
            c.usage.is_not(None),
        )
        totals: dict[int, Usage] = {}
        with self.store.reading() as conn:
            for version, usage in conn.execute(query):
                key = int(version)
                totals[key] = totals.get(key, Usage()) + Usage.from_dict(usage)
        return dict(sorted(totals.items()))

    # -- roll-ups ---------------------------------------------------------------------------

    def oldest_unrolled(self, before: datetime, since: datetime | None = None) -> datetime | None:
        """Start of the oldest sub-hour row starting in [since, before); None if none."""
        query = sa.select(sa.func.min(interval_profiles.c.start)).where(
            interval_profiles.c.seconds < ROLLUP_SECONDS,
            interval_profiles.c.start < _aware(before, "before"),
        )
        if since is not None:
            query = query.where(interval_profiles.c.start >= _aware(since, "since"))
        with self.store.reading() as conn:
            oldest = conn.execute(query).scalar_one_or_none()
        # min() of a UTCDateTime column comes back untyped on SQLite: normalise it here.
        return None if oldest is None else _as_datetime(oldest)

    def roll_up(self, start: datetime, end: datetime) -> int:
        """Merge the sub-hour rows starting in [start, end) into one row per hour; one transaction.

        ``start`` and ``end`` should be whole hours. A roll-up row already there for an
        affected hour (a late minute row arrived after the first pass) is merged in too, so
        each (model, version, hour) keeps a single row. Returns the minute rows merged.
        """
        start, end = _aware(start, "start"), _aware(end, "end")
        c = interval_profiles.c
        in_range = sa.and_(c.start >= start, c.start < end)
        with self.store.writing() as conn:
            if self.store.dialect == "postgresql":
                # One roll-up at a time, so a second one sees the first's hour rows and
                # merges into them instead of writing a second row for the same hour.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ROLLUP_LOCK_KEY)))
            minutes = conn.execute(
                interval_profiles.delete()
                .where(in_range, c.seconds < ROLLUP_SECONDS)
                .returning(*_INTERVAL_COLUMNS)
            ).all()
            if not minutes:
                return 0
            rows = [IntervalRow(*r) for r in minutes]
            hours = sorted({(r.model, r.version, _hour(r.start)) for r in rows})
            earlier = conn.execute(
                interval_profiles.delete()
                .where(
                    in_range,
                    c.seconds == ROLLUP_SECONDS,
                    sa.tuple_(c.model, c.version, c.start).in_(hours),
                )
                .returning(*_INTERVAL_COLUMNS)
            ).all()
            rows.extend(IntervalRow(*r) for r in earlier)
            merged = merge_hourly(rows)
            kept = sum(r.seconds < ROLLUP_SECONDS for r in merged)  # left as they were
            conn.execute(
                interval_profiles.insert(),
                [
                    {col.name: getattr(r, col.name) for col in _INTERVAL_COLUMNS}
                    | {"start": _aware(r.start, "start")}
                    for r in merged
                ],
            )
        return len(minutes) - kept

    def prune_intervals(
        self, *, minutes_before: datetime, hours_before: datetime
    ) -> tuple[int, int]:
        """Delete sub-hour rows starting before ``minutes_before`` and roll-up (hour or
        longer) rows starting before ``hours_before``; returns how many of each went.

        Deletes in chunks, each its own transaction, like the prediction log's prune.
        """
        c = interval_profiles.c
        minutes = self._delete_chunked(
            sa.and_(c.seconds < ROLLUP_SECONDS, c.start < _aware(minutes_before, "minutes_before"))
        )
        hours = self._delete_chunked(
            sa.and_(c.seconds >= ROLLUP_SECONDS, c.start < _aware(hours_before, "hours_before"))
        )
        return minutes, hours

    def _delete_chunked(self, condition: sa.ColumnElement[bool]) -> int:
        oldest = sa.select(interval_profiles.c.id).where(condition).limit(PRUNE_CHUNK_ROWS)
        total = 0
        while True:
            with self.store.writing() as conn:
                done = conn.execute(
                    interval_profiles.delete().where(interval_profiles.c.id.in_(oldest))
                )
            total += done.rowcount
            if done.rowcount < PRUNE_CHUNK_ROWS:
                return total

    # -- alerts -----------------------------------------------------------------------------

    def open_alerts(self, model: str | None = None) -> list[AlertRow]:
        query = sa.select(alerts).where(alerts.c.state == "firing").order_by(alerts.c.id)
        if model is not None:
            query = query.where(alerts.c.model == model)
        with self.store.reading() as conn:
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
        with self.store.reading() as conn:
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
        with self.store.writing() as conn:
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
        with self.store.writing() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(summary=summary, evidence=evidence, last_true_at=_aware(at, "at"))
            )

    def resolve(self, alert_id: int, at: datetime) -> AlertRow:
        with self.store.writing() as conn:
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
        # Imported here: the upsert is the one dialect-specific statement, and loading the
        # PostgreSQL dialect costs every SQLite command ~30 ms of start-up.
        if self.store.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        with self.store.writing() as conn:
            conn.execute(
                dialect.insert(leases)
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
        with self.store.writing() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _as_datetime(value: Any) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(stamp, datetime)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        total[key] = total.get(key, 0) + int(n)


def merge_hourly(rows: Sequence[IntervalRow]) -> list[IntervalRow]:
    """One roll-up row per (model, version, hour): every number of the rows added up.

    Counts (profile bins, nulls, latency buckets) add exactly; the float sums add up to
    rounding. Rows without profile counts (a version without reference) add traffic only.
    """
    groups: dict[tuple[str, int, datetime], list[IntervalRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.version, _hour(r.start)), []).append(r)
    merged: list[IntervalRow] = []
    for (model, version, hour), group in sorted(groups.items()):
        blobs = [(r.counts, r.sums) for r in group if r.counts is not None and r.sums is not None]
        if len({len(c) for c, _ in blobs}) > 1 or len({len(f) for _, f in blobs}) > 1:
            # Rows of one version that do not line up (never written by Plinth): leave them
            # as they are rather than fail the roll-up of every other hour.
            log.warning(
                "not rolling up %s:%s at %s: rows of different layouts", model, version, hour
            )
            merged.extend(group)
            continue
        errors: dict[str, int] = {}
        problems: dict[str, int] = {}
        for r in group:
            _add_counts(errors, r.errors)
            _add_counts(problems, r.problems)
        latency = np.vstack([decode_counts(r.latency) for r in group]).sum(axis=0)
        paid = [Usage.from_dict(r.usage) for r in group if r.usage is not None]
        counts = sums = None
        if blobs:
            counts = encode_counts(np.vstack([decode_counts(c) for c, _ in blobs]).sum(axis=0))
            floats = np.vstack([np.frombuffer(f, dtype=FLOAT_DTYPE) for _, f in blobs]).sum(axis=0)
            sums = floats.astype("<f8").tobytes()
        merged.append(
            IntervalRow(
                model=model,
                version=version,
                start=hour,
                seconds=ROLLUP_SECONDS,
                worker=ROLLUP_WORKER,
                requests=sum(r.requests for r in group),
                records=sum(r.records for r in group),
                errors=errors,
                validation_failures=sum(r.validation_failures for r in group),
                problems=problems,
                latency=encode_counts(latency),
                counts=counts,
                sums=sums,
                usage=sum(paid, Usage()).to_dict() if paid else None,
            )
        )
    return merged


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
