"""Store behaviour on every backend: registry numbering, lookups, and the prediction log."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

import plinth.store.store as store_module
from plinth.errors import NotFoundError, PlinthError, StoreError
from plinth.store import PredictionRecord, Store, VersionRecord
from plinth.store.feedback import FeedbackStore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def version_record(name: str = "iris", sha: str = "a" * 64, **changes: Any) -> VersionRecord:
    fields: dict[str, Any] = {
        "name": name,
        "version": 0,
        "sha256": sha,
        "flavor": "sklearn",
        "task": "classification",
        "created_at": T0,
        "metadata": {"contract": {"fields": {"b": "float", "a": "int"}}, "tags": ["x"]},
    }
    fields.update(changes)
    return VersionRecord(**fields)


def prediction(
    i: int, *, model: str = "iris", ts: datetime | None = None, **changes: Any
) -> PredictionRecord:
    fields: dict[str, Any] = {
        "id": f"01J{i:023d}",
        "ts": ts if ts is not None else T0 + timedelta(seconds=i),
        "model": model,
        "version": 1,
        "sha256": "a" * 64,
        "route": "champion",
        "input": {"sepal_length": 5.1, "species": None},
        "features": {"sepal_length": 5.1},
        "output": {"prediction": "setosa", "probabilities": {"setosa": 0.9, "virginica": 0.1}},
        "confidence": 0.9,
        "latency_ms": 1.25,
        "warnings": [],
        "request_id": f"req-{i}",
        "key": None,
    }
    fields.update(changes)
    return PredictionRecord(**fields)


def assert_exact(got: Any, want: Any, path: str = "$") -> None:
    """Equal, with the same types, the same key order and bit-identical floats."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, float):
        assert got.hex() == want.hex(), f"{path}: {got!r} != {want!r}"
    elif isinstance(want, dict):
        assert list(got) == list(want), f"{path}: keys {list(got)} != {list(want)}"
        for key in want:
            assert_exact(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_exact(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


# -- registry ---------------------------------------------------------------------------------


def test_versions_are_numbered_per_name(store: Store) -> None:
    first = store.add_version(version_record("iris", "1" * 64, version=7))
    second = store.add_version(version_record("iris", "2" * 64))
    other = store.add_version(version_record("wine", "1" * 64))
    third = store.add_version(version_record("iris", "3" * 64))

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert other.version == 1
    assert [v.version for v in store.list_versions("iris")] == [1, 2, 3]
    assert store.list_versions("nobody") == []


def test_registration_is_idempotent_on_hash(store: Store) -> None:
    first = store.add_version(version_record(sha="f" * 64))
    again = store.add_version(version_record(sha="f" * 64, flavor="other", metadata={}))

    assert again == first
    assert again.flavor == "sklearn"
    assert len(store.list_versions("iris")) == 1
    assert store.find_version("iris", "f" * 64) == first
    assert store.find_version("iris", "0" * 64) is None
    assert store.find_version("wine", "f" * 64) is None


def test_version_round_trips(store: Store) -> None:
    cet = timezone(timedelta(hours=1))
    metadata = {
        "contract": {"fields": {"z": {"min": -0.0, "max": 1e16}, "a": {"cats": ["é", "日本"]}}},
        "metrics": {"accuracy": 0.9666666666666667, "missing": None},
    }
    stored = store.add_version(version_record(created_at=T0.astimezone(cet), metadata=metadata))
    got = store.get_version("iris", 1)

    assert got == stored
    assert got.created_at == T0
    assert got.created_at.tzinfo is UTC
    assert stored.created_at.tzinfo is UTC
    assert_exact(got.metadata, metadata)


def test_get_version_defaults_to_latest(store: Store) -> None:
    for n in range(3):
        store.add_version(version_record(sha=str(n) * 64))

    assert store.get_version("iris").version == 3
    assert store.get_version("iris", 2).sha256 == "1" * 64


def test_not_found_codes_list_what_exists(store: Store) -> None:
    with pytest.raises(NotFoundError) as nothing:
        store.get_version("iris")
    assert nothing.value.code == "registry.model_not_found"
    assert "No models are registered" in nothing.value.hint

    store.add_version(version_record("iris", "1" * 64))
    store.add_version(version_record("iris", "2" * 64))
    store.add_version(version_record("wine", "1" * 64))

    with pytest.raises(NotFoundError) as model:
        store.get_version("irks")
    assert model.value.code == "registry.model_not_found"
    assert model.value.status == 404
    assert "iris, wine" in model.value.hint

    with pytest.raises(NotFoundError) as version:
        store.get_version("iris", 9)
    assert version.value.code == "registry.version_not_found"
    assert "1, 2" in version.value.hint


def test_list_models_summarises_latest(store: Store) -> None:
    later = T0 + timedelta(days=1)
    store.add_version(version_record("wine", "1" * 64, task="regression"))
    store.add_version(version_record("iris", "1" * 64))
    store.add_version(version_record("iris", "2" * 64, created_at=later))

    summaries = store.list_models()

    assert [(s.name, s.latest_version, s.versions, s.task) for s in summaries] == [
        ("iris", 2, 2, "classification"),
        ("wine", 1, 1, "regression"),
    ]
    assert summaries[0].updated_at == later
    assert summaries[0].updated_at.tzinfo is UTC


def test_update_version_metadata_replaces_document(store: Store) -> None:
    store.add_version(version_record(sha="1" * 64))
    store.add_version(version_record(sha="2" * 64))
    edited = {"contract": {"fields": {"a": "int"}}, "note": "range widened", "x": 0.1}

    updated = store.update_version_metadata("iris", 1, edited)

    assert_exact(updated.metadata, edited)
    assert_exact(store.get_version("iris", 1).metadata, edited)
    assert store.get_version("iris", 2).metadata != edited
    with pytest.raises(NotFoundError) as missing:
        store.update_version_metadata("iris", 5, edited)
    assert missing.value.code == "registry.version_not_found"
    with pytest.raises(NotFoundError) as unknown:
        store.update_version_metadata("wine", 1, edited)
    assert unknown.value.code == "registry.model_not_found"


# -- prediction log ----------------------------------------------------------------------------

AWKWARD_FLOATS = [
    0.1,
    1 / 3,
    -0.0,
    1e16,
    1e300,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    123456789.12345679,
]


def test_prediction_round_trip_is_exact(store: Store) -> None:
    record = prediction(
        1,
        ts=datetime(2025, 3, 1, 14, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
        input={
            "z_last_key_first": 1,
            "floats": AWKWARD_FLOATS,
            "ints": [0, -1, 2**63 - 1, -(2**63)],
            "text": 'héllo ✓ 日本 🚀 "quoted" \\ back\nslash \u0000 nul',
            "nested": {"a": [1, {"b": None, "c": [True, False]}], "empty": {}, "list": []},
            "missing": None,
        },
        features={"x": 1e16, "y": -0.0},
        output={"prediction": 3.0000000000000004, "probabilities": None},
        confidence=1 / 3,
        latency_ms=0.30000000000000004,
        warnings=[{"code": "contract.repaired", "field": "species", "detail": None}],
        key="caller-key-✓",
    )
    store.insert_predictions([record])

    got = store.get_prediction(record.id)

    assert got.ts == record.ts
    assert got.ts.tzinfo is UTC
    for name in ("input", "features", "output", "warnings", "confidence", "latency_ms"):
        assert_exact(getattr(got, name), getattr(record, name), name)
    assert got == record


def test_a_trace_id_travels_with_the_record_and_leaves_the_output_alone(store: Store) -> None:
    traced = prediction(1, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    store.insert_predictions([traced, prediction(2)])
    got = store.get_prediction(traced.id)
    assert got == traced and got.trace_id == traced.trace_id
    assert got.output == traced.output  # the id is kept beside the output, not in it
    assert store.get_prediction(prediction(2).id).trace_id is None


def test_features_identical_to_input_are_stored_once(store: Store) -> None:
    # The usual record reaches the model unrepaired: its row keeps the input only, and
    # every reader still gets the features back exactly.
    same = {"b": 0.1, "a": 3, "c": "x"}
    as_sent = prediction(1, input=dict(same), features=dict(same))
    # Equal as Python values but not as JSON (3 vs 3.0; key order): kept in full.
    widened = prediction(2, input={"a": 3}, features={"a": 3.0})
    reordered = prediction(3, input={"a": 1, "b": 2}, features={"b": 2, "a": 1})
    store.insert_predictions([as_sent, widened, reordered])

    with store._engine.connect() as conn:
        query = "SELECT id, CAST(features AS TEXT), features IS NULL FROM predictions"
        rows = conn.exec_driver_sql(query).all()
    stored = {key: text for key, text, _ in rows}
    assert not any(sql_null for _, _, sql_null in rows)  # JSON null, never SQL NULL
    assert stored[as_sent.id].strip() == "null"
    assert "3.0" in stored[widened.id]
    assert stored[reordered.id].replace(" ", "") == '{"b":2,"a":1}'

    for record in (as_sent, widened, reordered):
        assert_exact(store.get_prediction(record.id).features, record.features)
    listed = {r.id: r.features for r in store.list_predictions(model="iris")}
    assert_exact(listed[as_sent.id], same)
    found = FeedbackStore(store).prediction_features([as_sent.id, widened.id])
    assert_exact(found[as_sent.id], same)
    assert_exact(found[widened.id], {"a": 3.0})


def test_none_confidence_and_key_stay_none(store: Store) -> None:
    store.insert_predictions([prediction(1, confidence=None, key=None)])

    got = store.get_prediction(prediction(1).id)

    assert got.confidence is None
    assert got.key is None


def test_numpy_values_are_stored_as_plain_json(store: Store) -> None:
    record = prediction(
        1,
        features={"a": np.float64(0.1), "b": np.int64(3), "c": np.array([1.5, -0.0])},
    )
    store.insert_predictions([record])

    assert_exact(store.get_prediction(record.id).features, {"a": 0.1, "b": 3, "c": [1.5, -0.0]})


def test_non_finite_floats_become_null(store: Store) -> None:
    # JSON has no NaN or infinity; the log records them as missing rather than failing.
    record = prediction(1, features={"nan": math.nan, "inf": math.inf})
    store.insert_predictions([record])

    assert store.get_prediction(record.id).features == {"nan": None, "inf": None}


def test_missing_prediction_code(store: Store) -> None:
    with pytest.raises(NotFoundError) as missing:
        store.get_prediction("01JNOTTHERE")
    assert missing.value.code == "log.prediction_not_found"


def test_list_and_count_predictions(store: Store) -> None:
    rows = [prediction(i, model="iris" if i % 2 else "wine") for i in range(10)]
    store.insert_predictions(rows[:6])
    store.insert_predictions(rows[6:])
    store.insert_predictions([])

    assert store.count_predictions() == 10
    assert store.count_predictions("iris") == 5
    assert store.count_predictions("none") == 0
    assert [p.id for p in store.list_predictions()] == [r.id for r in reversed(rows)]
    assert [p.id for p in store.list_predictions("iris", limit=2)] == [rows[9].id, rows[7].id]
    since = rows[6].ts
    assert [p.id for p in store.list_predictions(since=since)] == [r.id for r in rows[:5:-1]]
    assert [p.id for p in store.list_predictions("wine", since=since)] == [rows[8].id, rows[6].id]
    assert store.list_predictions(limit=0) == []


def test_prune_deletes_only_older_rows_in_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks so the test crosses several chunk boundaries with few rows.
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_ROWS", 4)
    rows = [prediction(i) for i in range(30)]
    store.insert_predictions(rows)

    deleted = store.prune_predictions(rows[21].ts)

    assert deleted == 21
    assert store.count_predictions() == 9
    assert store.list_predictions(limit=100)[-1].id == rows[21].id
    assert store.prune_predictions(rows[21].ts) == 0


def test_duplicate_prediction_id_is_a_conflict(store: Store) -> None:
    store.insert_predictions([prediction(1)])

    with pytest.raises(StoreError) as conflict:
        store.insert_predictions([prediction(2), prediction(1)])
    assert conflict.value.code == "store.conflict"
    # The batch is one transaction: the good row went nowhere either.
    assert store.count_predictions() == 1


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2025, 3, 1, 12, 0, 0)
    with pytest.raises(StoreError) as log:
        store.insert_predictions([prediction(1, ts=naive)])
    assert log.value.code == "store.invalid_value"
    with pytest.raises(StoreError) as registry:
        store.add_version(version_record(created_at=naive))
    assert registry.value.code == "store.invalid_value"
    with pytest.raises(StoreError) as prune:
        store.prune_predictions(naive)
    assert prune.value.code == "store.invalid_value"
    assert store.count_predictions() == 0


def test_unserialisable_value_is_refused(store: Store) -> None:
    with pytest.raises(StoreError) as error:
        store.insert_predictions([prediction(1, input={"when": object()})])
    assert error.value.code == "store.invalid_value"
    assert store.count_predictions() == 0


def test_nul_in_text_columns(store: Store) -> None:
    # PostgreSQL text cannot hold NUL; SQLite can. Either way no driver error escapes.
    record = prediction(1, request_id="req\x00id")
    if store.dialect == "postgresql":
        with pytest.raises(StoreError) as refused:
            store.insert_predictions([record])
        assert refused.value.code == "store.invalid_value"
    else:
        store.insert_predictions([record])
        assert store.get_prediction(record.id).request_id == "req\x00id"


def test_store_reopens_without_migrating_again(store: Store, database_url: str) -> None:
    store.add_version(version_record())

    with Store(database_url, migrate=False) as again:
        assert repr(again).startswith(f"Store('{again.dialect}")
        assert again.get_version("iris").version == 1
    with Store(database_url) as migrated:
        assert migrated.list_versions("iris")[0].version == 1


def test_database_errors_never_carry_the_bound_values(store: Store) -> None:
    """A failed statement's message (logged, or shown as a 5xx reason) leaves out its
    parameters: they are raw inputs and secrets."""
    import sqlalchemy as sa

    secret = "raw-value-SECRET-4242"
    statement = sa.text("INSERT INTO models (name, created_at) VALUES (:name, NULL)")
    with pytest.raises(sa.exc.IntegrityError) as info, store.write_engine.begin() as conn:
        conn.execute(statement, {"name": secret})
    assert "parameters hidden" in str(info.value)
    assert f"'{secret}'" not in str(info.value)  # SQLAlchemy's [parameters: ...] line
    # What Plinth itself says (and logs) about it: the driver's first line only, since
    # PostgreSQL's DETAIL line quotes the failing row.
    with (
        pytest.raises(PlinthError) as caught,
        store.translated_errors("store a model"),
        store.write_engine.begin() as conn,
    ):
        conn.execute(statement, {"name": secret})
    assert caught.value.code.startswith("store.")
    assert secret not in str(caught.value)
