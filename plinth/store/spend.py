"""SQL for remote models' spend: one row per model per UTC day, added to atomically.

Every worker and replica adds what it spent with one upsert (``INSERT ... ON CONFLICT DO
UPDATE SET spent = spent + excluded.spent RETURNING spent``), which both SQLite and
PostgreSQL run atomically, so the day's total is exact however many processes pay into
it, and the same statement tells the writer the total it just made.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from plinth.store.schema import remote_spend
from plinth.store.store import Store


class SpendStore:
    """The ``remote_spend`` table over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, model: str, day: date, amount: float) -> float:
        """Add ``amount`` to ``model``'s spend on ``day``; returns the day's new total."""
        values = {"model": model, "day": day, "spent": amount, "updated_at": datetime.now(UTC)}
        insert = (pg.insert if self.store.dialect == "postgresql" else sqlite.insert)(remote_spend)
        upsert = insert.values(**values).on_conflict_do_update(
            index_elements=[remote_spend.c.model, remote_spend.c.day],
            set_={
                "spent": remote_spend.c.spent + insert.excluded.spent,
                "updated_at": insert.excluded.updated_at,
            },
        )
        with self.store.writing() as conn:
            return float(conn.execute(upsert.returning(remote_spend.c.spent)).scalar_one())

    def spent(self, model: str, day: date) -> float:
        """What ``model`` has spent on ``day`` (0 when nothing yet)."""
        query = sa.select(remote_spend.c.spent).where(
            remote_spend.c.model == model, remote_spend.c.day == day
        )
        with self.store.reading() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return 0.0 if found is None else float(found)
