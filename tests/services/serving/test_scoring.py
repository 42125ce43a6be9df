from __future__ import annotations

import time

import numpy as np
import pytest

from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.scoring import Job, score
from tests.support import BrokenModel, churn_model, churn_record, churn_table, regression_table


def _job(records: list[object], deadline: float = 60.0) -> Job:
    now = time.perf_counter()
    return Job(list(records), "req", now, now + deadline)


@pytest.fixture
def broken(registry: Registry) -> ServedModel:
    train = regression_table()
    record = registry.register(
        BrokenModel(),
        name="broken",
        train=train,
        target="y",
        task="regression",
        trust_pickle=True,
    )
    return registry.load(record)


@pytest.fixture
def churn(registry: Registry) -> ServedModel:
    train = churn_table()
    return registry.load(
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    )


def test_one_bad_request_never_fails_its_batch_mates(broken: ServedModel) -> None:
    jobs = [
        _job([{"a": 1.0, "b": 2.0}]),
        _job([{"a": "x", "b": 2.0}, {"b": 1.0}]),  # breaks the contract twice
        _job([{"a": 5000.0, "b": 0.0}]),  # the model raises on it
        _job([{"a": -5000.0, "b": 0.0}]),  # the model returns NaN for it
        _job([{"a": 2.0, "b": 2.0}, {"a": 3.0, "b": 1.0}]),
    ]
    results = score(broken, jobs)
    assert results[0].error is None and results[0].answers[0]["prediction"] == 2.0
    assert results[1].error is not None and results[1].error.code == "contract.invalid"
    assert {(p.record, p.field, p.code) for p in results[1].error.problems} == {
        (0, "a", "contract.wrong_type"),
        (1, "a", "contract.missing_field"),
    }
    assert results[2].error is not None and results[2].error.code == "model.error"
    assert results[3].error is not None and results[3].error.code == "model.bad_output"
    assert results[4].error is None
    assert [a["prediction"] for a in results[4].answers] == [4.0, 6.0]
    assert len(results[4].rows) == 2


def test_classifier_answers_carry_probabilities_and_log_rows(churn: ServedModel) -> None:
    (result,) = score(churn, [_job([churn_record(), churn_record(city="rome", income=None)])])
    assert result.error is None
    first, second = result.answers
    assert set(first["probabilities"]) == {"no", "yes"}
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)
    assert first["confidence"] == max(first["probabilities"].values())
    assert first["prediction"] == max(first["probabilities"], key=first["probabilities"].get)
    codes = {w["code"] for w in second["warnings"]}
    assert {"contract.unseen_category", "contract.null_passed"} <= codes
    row = result.rows[1]
    assert row.input["city"] == "rome" and row.input["income"] is None
    assert row.features["income"] is None  # the pipeline's own imputer fills it in
    assert row.output["probabilities"] == second["probabilities"]
    assert row.id == second["prediction_id"]


def test_a_job_past_its_deadline_is_answered_with_an_error(churn: ServedModel) -> None:
    (late, on_time) = score(churn, [_job([churn_record()], deadline=-1.0), _job([churn_record()])])
    assert late.error is not None and late.error.code == "model.deadline_exceeded"
    assert on_time.error is None


def test_non_object_records_are_contract_problems(churn: ServedModel) -> None:
    (result,) = score(churn, [_job([1, "x", None, [1, 2]])])
    assert result.error is not None
    assert {p.code for p in result.error.problems} == {"contract.not_an_object"}
    assert sorted(p.record for p in result.error.problems if p.record is not None) == [0, 1, 2, 3]


def test_ids_are_unique_and_time_sortable(churn: ServedModel) -> None:
    ids: list[str] = []
    for _ in range(3):
        (result,) = score(churn, [_job([churn_record()] * 5)])
        ids.extend(a["prediction_id"] for a in result.answers)
    assert len(set(ids)) == len(ids)
    assert np.all([len(i) == 26 for i in ids])


def test_observers_see_only_answered_rows_and_cannot_fail_a_reply(
    broken: ServedModel, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[list[float], list[float]]] = []

    def observer(model: ServedModel, frame: object, predictions: np.ndarray, _: object) -> None:
        assert model is broken
        seen.append((list(frame["a"]), list(predictions)))  # type: ignore[index]

    def failing(*_: object) -> None:
        raise RuntimeError("monitoring bug")

    jobs = [
        _job([{"a": 1.0, "b": 0.0}]),
        _job([{"a": -5000.0, "b": 0.0}]),  # NaN output: not answered, not observed
        _job([{"a": 3.0, "b": 0.0}]),
    ]
    results = score(broken, jobs, [failing, observer])
    assert [r.error is None for r in results] == [True, False, True]
    assert seen == [([1.0, 3.0], [2.0, 6.0])]
    assert "monitoring bug" in caplog.text
