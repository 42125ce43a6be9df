from __future__ import annotations

import time

import pytest

from plinth.errors import RegistryError
from plinth.services.registry.versions import Registry
from plinth.services.replay import diff, replay
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, score
from tests.support import churn_model, churn_record, churn_table


def _serve_and_log(registry: Registry, records: list[dict[str, object]]) -> list[str]:
    train = churn_table()
    model = registry.load(
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    )
    now = time.perf_counter()
    (result,) = score(model, [Job(records, "req-1", now, now + 60)])
    assert result.error is None
    writer = LogWriter(registry.store)
    writer.start()
    writer.submit(result.rows).result(timeout=30)
    writer.close()
    return [a["prediction_id"] for a in result.answers]


def test_replay_reproduces_a_logged_prediction_exactly(registry: Registry) -> None:
    ids = _serve_and_log(
        registry,
        [churn_record(), churn_record(income=None, city="rome", extra="x"), churn_record(age=99)],
    )
    for prediction_id in ids:
        result = replay(registry.store, registry, prediction_id)
        assert result.identical, result.differences
        assert result.replayed == result.logged


def test_replay_refuses_an_artifact_that_changed(registry: Registry) -> None:
    (prediction_id,) = _serve_and_log(registry, [churn_record()])
    record = registry.store.get_prediction(prediction_id)
    path = registry.artifacts.path(record.sha256)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(RegistryError) as info:
        replay(registry.store, registry, prediction_id)
    assert info.value.code == "registry.hash_mismatch"


def test_diff_names_every_difference() -> None:
    logged = {"prediction": "yes", "probabilities": {"no": 0.25, "yes": 0.75}}
    replayed = {"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}}
    assert diff(logged, replayed) == [
        "output.prediction: 'yes' → 'no'",
        "output.probabilities.no: 0.25 → 0.5",
        "output.probabilities.yes: 0.75 → 0.5",
    ]
    assert diff(logged, logged) == []
    assert diff({"a": 1}, {"b": 1}) == ["output.a: only in logged", "output.b: only in replayed"]
