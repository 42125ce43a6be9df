"""The log writer's own connection: same rows as the Store writes, and it survives failures."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from plinth.errors import StoreError
from plinth.store import Store
from tests.store.test_store import assert_exact, prediction


def test_appended_rows_read_back_exactly_like_inserted_ones(store: Store) -> None:
    appender = store.prediction_appender()
    try:
        appender.append([prediction(1), prediction(2, key="k", confidence=None)])
        appender.append([])
    finally:
        appender.close()
    store.insert_predictions([prediction(3)])
    for i in (1, 2, 3):
        want = prediction(i, key="k", confidence=None) if i == 2 else prediction(i)
        got = store.get_prediction(want.id)
        assert_exact(got.input, want.input)
        assert_exact(got.features, want.features)
        assert_exact(got.output, want.output)
        assert (got.ts, got.key, got.confidence, got.request_id) == (
            want.ts,
            want.key,
            want.confidence,
            want.request_id,
        )
    newest_first = [p.id for p in store.list_predictions()]
    assert newest_first == [prediction(i).id for i in (3, 2, 1)]


def test_a_bad_row_fails_its_group_only(store: Store) -> None:
    appender = store.prediction_appender()
    try:
        with pytest.raises(StoreError) as naive:
            appender.append([prediction(1), prediction(2, ts=datetime(2025, 3, 1, 12))])
        assert naive.value.code == "store.invalid_value"
        with pytest.raises(StoreError) as duplicate:
            appender.append([prediction(3), prediction(3)])
        assert duplicate.value.code == "store.conflict"
        appender.append([prediction(4)])
    finally:
        appender.close()
    assert [p.id for p in store.list_predictions()] == [prediction(4).id]


@pytest.mark.postgres
def test_a_dropped_connection_fails_one_group_and_the_next_reconnects(
    store: Store, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating a server connection needs PostgreSQL")
    appender = store.prediction_appender()
    try:
        appender.append([prediction(1)])
        admin = sa.create_engine(database_url)
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        admin.dispose()
        assert killed
        with pytest.raises(StoreError) as lost:
            appender.append([prediction(2)])
        assert lost.value.code == "store.unavailable"
        appender.append([prediction(3)])
    finally:
        appender.close()
    assert {p.id for p in store.list_predictions()} == {prediction(1).id, prediction(3).id}
