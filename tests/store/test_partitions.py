"""PostgreSQL's prediction log: daily partitions made ahead, retention drops whole days,
and the migration moves an existing log into partitions without losing a row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from plinth.store import Store, migrations, partitions
from tests.store.test_store import prediction

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def pg_url(database_url: str) -> Iterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("partitions are PostgreSQL's; SQLite keeps one table")
    yield database_url


def _days(store: Store) -> set[str]:
    with store.reading() as conn:
        return set(partitions.existing_days(conn).values())


def test_a_new_store_has_yesterday_through_a_week_ahead(pg_url: str) -> None:
    with Store(pg_url) as store:
        today = NOW.date()
        want = {partitions.day_name(today + timedelta(days=d)) for d in range(-1, 8)}
        assert _days(store) == want
        assert store.ensure_log_partitions() == []  # idempotent
        later = store.ensure_log_partitions(NOW + timedelta(days=3))
        assert later == [partitions.day_name(today + timedelta(days=d)) for d in (8, 9, 10)]


def test_rows_land_in_their_day_and_outliers_in_the_default(pg_url: str) -> None:
    with Store(pg_url) as store:
        today, ancient = prediction(1, ts=NOW), prediction(2, ts=NOW - timedelta(days=400))
        store.insert_predictions([today])
        appender = store.prediction_appender()
        try:
            appender.append([ancient])  # COPY goes through the same routing
        finally:
            appender.close()
        with store.reading() as conn:
            where = dict(
                conn.exec_driver_sql("SELECT id, tableoid::regclass::text FROM predictions").all()
            )
        assert where == {today.id: partitions.day_name(NOW.date()), ancient.id: partitions.DEFAULT}
        assert store.get_prediction(ancient.id).ts == ancient.ts


def test_retention_drops_whole_days_and_deletes_the_rest(pg_url: str) -> None:
    with Store(pg_url) as store:
        store.ensure_log_partitions(NOW - timedelta(days=5))  # days from 6 days ago on
        rows = [prediction(i, ts=NOW - timedelta(days=5, hours=-i)) for i in range(0, 120, 2)]
        rows.append(prediction(999, ts=NOW - timedelta(days=900)))  # in the default partition
        store.insert_predictions(rows)
        before = _days(store)
        cutoff = NOW - timedelta(days=2)
        deleted = store.prune_predictions(cutoff)
        assert deleted == sum(1 for r in rows if r.ts < cutoff)
        assert store.count_predictions() == sum(1 for r in rows if r.ts >= cutoff)
        gone = before - _days(store)
        assert gone and all(
            partitions.day_of(name) + timedelta(days=1) <= cutoff.date() for name in gone
        )
        assert store.prune_predictions(cutoff) == 0


def test_the_migration_moves_an_existing_log_into_partitions(pg_url: str) -> None:
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn, "0007")
    finally:
        engine.dispose()
    rows = [prediction(i, ts=NOW - timedelta(days=i % 3, minutes=i)) for i in range(50)]
    rows.append(prediction(77, ts=NOW - timedelta(days=365), key="k"))
    with Store(pg_url, migrate=False) as old:
        old.insert_predictions(rows)
    with Store(pg_url) as store:  # migrates to head
        with store.reading() as conn:
            kind = conn.exec_driver_sql(
                "SELECT relkind FROM pg_class WHERE relname = 'predictions'"
            ).scalar_one()
        assert kind == "p"
        assert store.count_predictions() == len(rows)
        for row in rows:
            got = store.get_prediction(row.id)
            assert (got.ts, got.input, got.key) == (row.ts, row.input, row.key)
        days = {partitions.day_of(n) for n in _days(store)}
        assert (NOW - timedelta(days=365)).date() in days  # a day with rows gets its own
        assert (NOW - timedelta(days=200)).date() not in days  # empty days in between do not
