"""Keeping long windows cheap: hourly roll-ups and pruning of interval rows.

``roll_up``: once an hour has been over for two hours, its minute rows (from every worker)
are merged into one row for that hour, in the same table and in one transaction (see
``plinth.store.monitoring``). One worker at a time does it, under the ``monitor.rollup``
lease, from the collector's flush task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from plinth.services.process import worker_id
from plinth.store import Store
from plinth.store.monitoring import MonitoringStore

log = logging.getLogger("plinth.monitoring")

#: Minute rows are rolled up once their hour ended at least this long ago.
ROLLUP_AFTER = timedelta(hours=2)
#: Hours rolled up per transaction, so a backlog never holds the write lock for long.
ROLLUP_CHUNK = timedelta(hours=6)
#: How often each worker looks for hours to roll up (one of them does the work).
ROLLUP_EVERY_S = 300.0
ROLLUP_LEASE = "monitor.rollup"


# ---------------------------------------------------------------------- rolling up


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def roll_up(
    store: Store,
    *,
    now: datetime | None = None,
    after: timedelta = ROLLUP_AFTER,
    holder: str | None = None,
    lease: bool = True,
) -> int | None:
    """Merge the minute rows of every hour that ended at least ``after`` ago, hour by hour.

    Idempotent, and safe beside writers and other roll-ups (each transaction merges only
    the rows it deleted itself). With ``lease`` it first takes the ``monitor.rollup`` lease
    and returns None when another process holds it. Returns the minute rows merged.
    """
    rows = MonitoringStore(store)
    now = now or datetime.now(UTC)
    cutoff = _floor_hour(now - after)
    if rows.oldest_unrolled(cutoff) is None:
        return 0  # the usual case: one cheap read, no lease, no write
    holder = holder or worker_id()
    lease_s = timedelta(minutes=10)
    if lease and not rows.acquire_lease(ROLLUP_LEASE, holder, now, now + lease_s):
        return None
    merged = 0
    try:
        oldest = rows.oldest_unrolled(cutoff)
        while oldest is not None:
            start = _floor_hour(oldest)
            end = min(cutoff, start + ROLLUP_CHUNK)
            merged += rows.roll_up(start, end)
            # Onwards from the end of this chunk, skipping hours without minute rows; rows
            # a roll-up had to leave as they were are not looked at again in this pass.
            oldest = rows.oldest_unrolled(cutoff, since=end)
            if lease:  # a long backlog: keep the lease while working through it
                at = datetime.now(UTC)
                rows.acquire_lease(ROLLUP_LEASE, holder, at, at + lease_s)
    finally:
        if lease:
            rows.release_lease(ROLLUP_LEASE, holder)
    if merged:
        log.info("rolled up %d interval rows older than %s", merged, cutoff.isoformat())
    return merged


@dataclass(frozen=True)
class IntervalPrune:
    """What ``prune_intervals`` did: minute rows merged into hours, rows deleted."""

    rolled_up: int
    minutes_deleted: int
    hours_deleted: int


def prune_intervals(
    store: Store, *, minutes_before: datetime, hours_before: datetime, now: datetime | None = None
) -> IntervalPrune:
    """Retention for interval rows: roll up what can be, then delete old rows.

    Rolling up first means pruning never drops what an hourly row would have kept; minute
    rows older than ``minutes_before`` that are left (none, once roll-ups run) are deleted,
    and hourly roll-ups older than ``hours_before``.
    """
    rolled = roll_up(store, now=now, lease=False) or 0
    minutes, hours = MonitoringStore(store).prune_intervals(
        minutes_before=minutes_before, hours_before=hours_before
    )
    return IntervalPrune(rolled, minutes, hours)
