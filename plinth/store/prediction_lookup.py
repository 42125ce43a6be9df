"""Finding logged predictions by id, on a log that PostgreSQL partitions by time.

The log's partitions are days of ``ts`` (partitions.py) and its primary key is ``(id, ts)``,
so a lookup by id alone probes the key of every partition: a month of days, 7.2 ms per
``get_prediction`` at 100 M rows. But a prediction id is a ULID whose first 48 bits are the
millisecond it was minted, and serving mints it just after taking the row's ``ts``, from the
same clock in the same process (``scoring.py``, ``routing.py``): ``ts`` is never more than a
millisecond after the id's time, and before it only when the clock stepped back since the
process's previous id (its ids never go back; its stamps do). So a lookup first searches
``ts`` from ``EARLIEST`` before the id's time to ``LATEST`` after it (one partition, two
near midnight) and then, for any id not found there, the whole log as before: a row whose
``ts`` is far from its id's time (imported, written by hand, after a large clock step)
is still found, at the old cost. SQLite keeps one table: there the key alone is searched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from plinth.core.ids import time_ms
from plinth.store.schema import predictions

EARLIEST = timedelta(hours=1)  # ts may trail its id by a clock step back: an hour covers NTP's
LATEST = timedelta(minutes=1)  # ts follows its id by under a millisecond; the rest is margin
IN_CHUNK = 900  # ids per statement: SQLite allows 32,766 bound parameters, stay well below
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def find_by_id(
    conn: Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    ids: Sequence[str],
    *,
    partitioned: bool,
) -> list[Row[Any]]:
    """``columns`` (which must include ``predictions.c.id``) of the logged predictions with
    these ids, in no particular order; an id not in the log is left out."""
    wanted = list(dict.fromkeys(ids))
    if not partitioned:
        return _select(conn, columns, wanted)
    found: list[Row[Any]] = []
    for (lower, upper), group in _by_window(wanted).items():
        found += _select(conn, columns, group, predictions.c.ts >= lower, predictions.c.ts <= upper)
    if len(found) < len(wanted):  # not where their ids' time says: search everywhere
        seen = {row.id for row in found}
        found += _select(conn, columns, [i for i in wanted if i not in seen])
    return found


def window(prediction_id: str) -> tuple[datetime, datetime] | None:
    """Where the ``ts`` of the prediction with this id is looked for first (None: not a ULID).

    >>> [f"{t:%Y-%m-%d %H:%M}" for t in window('01HF7YAT00000000000000001A')]
    ['2023-11-14 21:13', '2023-11-14 22:14']
    """
    ms = time_ms(prediction_id)
    if ms is None:
        return None
    minted = _EPOCH + timedelta(milliseconds=ms)
    return minted - EARLIEST, minted + LATEST


def _by_window(ids: Sequence[str]) -> dict[tuple[datetime, datetime], list[str]]:
    """Ids grouped by the days their windows span (one statement per group, so each
    statement's bounds stay within those days' partitions), with each group's bounds."""
    groups: dict[tuple[date, date], tuple[datetime, datetime, list[str]]] = {}
    for prediction_id in ids:
        bounds = window(prediction_id)
        if bounds is None:  # not a ULID: left to the whole-log search
            continue
        lower, upper = bounds
        days = (lower.date(), upper.date())
        if days in groups:
            low, high, members = groups[days]
            groups[days] = (min(low, lower), max(high, upper), members)
        else:
            groups[days] = (lower, upper, members := [])
        members.append(prediction_id)
    return {(low, high): members for low, high, members in groups.values()}


def _select(
    conn: Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    ids: Sequence[str],
    *where: sa.ColumnElement[bool],
) -> list[Row[Any]]:
    rows: list[Row[Any]] = []
    for start in range(0, len(ids), IN_CHUNK):
        part = ids[start : start + IN_CHUNK]
        rows += conn.execute(sa.select(*columns).where(predictions.c.id.in_(part), *where)).all()
    return rows
