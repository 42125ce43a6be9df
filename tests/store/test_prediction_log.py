"""The log writer's own connection: same rows as the Store writes, and it survives failures."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from plinth.errors import StoreError
from plinth.store import Store
from plinth.store.feedback import FeedbackStore
from plinth.store.prediction_log import SQLITE_WAL_LIMIT_BYTES
from tests.store.test_store import assert_exact, prediction, version_record


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
def test_a_dropped_connection_is_replaced_before_the_group_fails(
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
        # The store is back: the first group after the fault is written, not refused.
        appender.append([prediction(2)])
        appender.append([prediction(3)])
    finally:
        appender.close()
    assert {p.id for p in store.list_predictions()} == {prediction(i).id for i in (1, 2, 3)}


def _stored_inputs(store: Store) -> dict[str, tuple[str, str]]:
    with store._engine.connect() as conn:
        query = "SELECT id, CAST(input AS TEXT), CAST(features AS TEXT) FROM predictions"
        return {i: (given, seen) for i, given, seen in conn.exec_driver_sql(query).all()}


def test_a_record_with_exactly_the_contract_fields_is_stored_positionally(store: Store) -> None:
    contract = {"fields": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    store.add_version(version_record("iris", metadata={"contract": contract}))
    fields = ("a", "b", "c")
    sent = {"c": "x", "a": 0.1 + 0.2, "b": None}  # any key order: order is not meaning
    exact = prediction(1, input=dict(sent), features=dict(sent), fields=fields)
    repaired = prediction(2, input={"a": "2.5", "b": 1, "c": "x"},
                          features={"a": 2.5, "b": 1.0, "c": "x"}, fields=fields)  # fmt: skip
    extra = prediction(3, input={"a": 1.0, "b": 2.0, "c": "x", "note": "hi"},
                       features={"a": 1.0, "b": 2.0, "c": "x"}, fields=fields)  # fmt: skip
    missing = prediction(4, input={"a": 1.0}, features={"a": 1.0, "b": None, "c": None},
                         fields=fields)  # fmt: skip
    appender = store.prediction_appender()
    try:
        appender.append([exact, repaired, extra])
    finally:
        appender.close()
    store.insert_predictions([missing])

    raw = {
        k: (g.replace(" ", ""), s.replace(" ", "")) for k, (g, s) in _stored_inputs(store).items()
    }
    assert raw[exact.id] == ('[0.30000000000000004,null,"x"]', "null")
    assert raw[repaired.id] == ('["2.5",1,"x"]', '[2.5,1.0,"x"]')
    assert raw[extra.id][0].startswith("{")  # an extra key: kept as sent
    assert raw[missing.id][0] == '{"a":1.0}'

    for record in (exact, repaired, extra, missing):
        got = store.get_prediction(record.id)
        assert got.input == record.input and got.features == record.features
        for key, value in record.input.items():  # same types, bit-identical floats
            assert_exact(got.input[key], value, key)
    assert list(store.get_prediction(exact.id).input) == ["a", "b", "c"]  # contract order
    floats = store.get_prediction(exact.id).input["a"]
    assert floats.hex() == (0.1 + 0.2).hex()
    listed = {r.id: r for r in store.list_predictions(model="iris")}
    assert listed[repaired.id].features == {"a": 2.5, "b": 1.0, "c": "x"}
    found = FeedbackStore(store).prediction_features([exact.id, repaired.id, extra.id])
    assert found[exact.id] == sent and found[extra.id] == extra.features
    row = FeedbackStore(store).prediction_row(repaired.id)
    assert row is not None and row["input"] == repaired.input


def test_an_appender_without_checkpoints_leaves_the_wal_to_checkpoint(
    store: Store, database_url: str
) -> None:
    # The scoring thread's appender: its commits never checkpoint SQLite's WAL (a checkpoint
    # would stall the next model call); ``checkpoint`` from another connection does it.
    if not database_url.startswith("sqlite"):
        pytest.skip("WAL checkpoints are SQLite's")
    wal = Path(store._engine.url.database + "-wal")
    direct = store.prediction_appender(checkpoints=False)
    other = store.prediction_appender()
    try:
        direct.append([prediction(0)])
        assert direct._conn.cursor().execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        for i in range(1, 40):  # well past 1,000 WAL pages with autocheckpoint on
            direct.append([prediction(i * 1000 + j, input={"x": "y" * 2000}) for j in range(100)])
        grown = wal.stat().st_size
        assert grown > 1000 * 4096  # nothing checkpointed it: the WAL only grew
        other.checkpoint()
        for i in range(40, 44):  # the next commits start the WAL over from its beginning
            direct.append([prediction(i * 1000 + j, input={"x": "y" * 2000}) for j in range(100)])
        assert store.count_predictions() == 1 + 43 * 100
    finally:
        direct.close()
        other.close()
    with store._engine.connect() as conn:  # pooled connections checkpoint as usual again
        setting = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").fetchone()
    assert setting == (1000,)
    assert wal.stat().st_size <= grown


def test_a_wal_held_by_a_reader_starts_over_once_the_reader_leaves(
    store: Store, database_url: str
) -> None:
    # A passive checkpoint alone never starts the WAL over while readers come and go, so
    # past the size limit ``checkpoint`` forces a restart (and, idle, empties the file).
    if not database_url.startswith("sqlite"):
        pytest.skip("WAL checkpoints are SQLite's")
    path = str(store._engine.url.database)
    wal = Path(path + "-wal")
    direct = store.prediction_appender(checkpoints=False)  # the scoring threads' connection
    tidier = store.prediction_appender()  # the log writer thread's
    reader = sqlite3.connect(path, isolation_level=None)  # the monitor, the console
    batches = itertools.count()

    def write() -> None:
        first = next(batches) * 100
        direct.append([prediction(first + j, input={"x": "y" * 20_000}) for j in range(100)])

    try:
        write()
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM predictions").fetchone()  # holds a snapshot
        while wal.stat().st_size <= SQLITE_WAL_LIMIT_BYTES:
            write()
        assert tidier.checkpoint() is False  # the reader is still in the WAL
        write()
        held = wal.stat().st_size
        assert held > SQLITE_WAL_LIMIT_BYTES  # appended to, not started over
        reader.execute("COMMIT")
        assert tidier.checkpoint() is True  # past the limit and no reader: started over
        write()
        assert wal.stat().st_size <= SQLITE_WAL_LIMIT_BYTES < held  # cut back to the limit
        assert tidier.checkpoint(idle=True) is True
        assert wal.stat().st_size == 0  # idle: emptied
        assert store.count_predictions() == 100 * next(batches)
    finally:
        reader.close()
        direct.close()
        tidier.close()
