"""The prediction log on PostgreSQL: one partition per UTC day, so retention drops tables.

Deleting a month of rows from a 100-million-row table rewrites indexes row by row and leaves
bloat for vacuum; dropping a day's partition is a catalogue change. The table is
``PARTITION BY RANGE (ts)`` with daily children named ``predictions_pYYYYMMDD`` and a
``predictions_default`` child that catches any row whose day has no partition (an import of
old rows, a clock far off), so an insert never fails for want of a partition.

Partitions are created ahead (yesterday to a week on) when the store opens and every hour by
each serving process; creation is idempotent and serialised across processes and replicas by
a transaction-scoped advisory lock. SQLite has no partitions: every function here is for
PostgreSQL connections only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

TABLE = "predictions"
DEFAULT = "predictions_default"
DAYS_BEHIND = 1
DAYS_AHEAD = 7
_NAME = re.compile(r"^predictions_p(\d{8})$")
_LOCK_KEY = 0x706C696E7468  # "plinth": one advisory lock for partition maintenance


def day_name(day: date) -> str:
    """``predictions_p20261205`` holds the rows of that UTC day."""
    return f"{TABLE}_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    """The day a partition's name says it holds (None for the default or anything else)."""
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def is_partition(name: str) -> bool:
    """Whether a table is one of the log's partitions (not part of the declared schema)."""
    return name == DEFAULT or day_of(name) is not None


def existing_days(conn: Connection) -> dict[date, str]:
    """The daily partitions attached to the log, by day."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %(table)s",
        {"table": TABLE},
    )
    days = {}
    for (name,) in rows:
        day = day_of(name)
        if day is not None:
            days[day] = name
    return days


def ensure_days(conn: Connection, days: Iterable[date]) -> list[str]:
    """Create the daily partitions for ``days`` that are missing; returns their names. A
    day whose rows already sit in the default partition is skipped (a partition cannot be
    carved out of it) and logged: those rows stay queryable there."""
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _LOCK_KEY})
    have = existing_days(conn)
    made = []
    for day in sorted(set(days)):
        if day not in have:
            start, end = _bounds(day)
            stray = conn.exec_driver_sql(
                f"SELECT 1 FROM {DEFAULT} WHERE ts >= %(start)s AND ts < %(end)s LIMIT 1",
                {"start": start, "end": end},
            ).first()
            if stray is None:
                conn.exec_driver_sql(
                    f"CREATE TABLE {day_name(day)} PARTITION OF {TABLE} "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
                made.append(day_name(day))
            else:
                log.warning(
                    "rows for %s are in %s; that day keeps them there (no partition)", day, DEFAULT
                )
    return made


def around(now: datetime) -> list[date]:
    """Yesterday through a week from ``now`` (UTC days)."""
    today = now.astimezone(UTC).date()
    return [today + timedelta(days=d) for d in range(-DAYS_BEHIND, DAYS_AHEAD + 1)]


def ensure_around(conn: Connection, now: datetime) -> list[str]:
    """The partitions for yesterday through a week from ``now``."""
    return ensure_days(conn, around(now))


def expired_days(conn: Connection, cutoff: datetime) -> list[str]:
    """Daily partitions whose every row is older than ``cutoff`` (their day ended by then)."""
    days = existing_days(conn)
    return [name for day, name in sorted(days.items()) if _bounds(day)[1] <= cutoff]


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
