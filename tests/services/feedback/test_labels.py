"""Labels: per-item judgement, replace-with-history, keys, and validation on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plinth.core.output import OutputContract
from plinth.services.feedback.labels import Feedback, coerce_label, parse_time
from plinth.services.registry.versions import Registry
from plinth.store import PredictionRecord
from plinth.store.feedback import FeedbackStore
from tests.support import churn_model, churn_record, churn_table, regression_table, ridge_model

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def log_prediction(
    registry: Registry,
    name: str,
    pid: str,
    *,
    ts: datetime = T0,
    key: str | None = None,
    request_id: str | None = None,
    output: dict[str, Any] | None = None,
) -> None:
    version = registry.store.get_version(name)
    registry.store.insert_predictions(
        [
            PredictionRecord(
                id=pid,
                ts=ts,
                model=name,
                version=version.version,
                sha256=version.sha256,
                route="champion",
                input=churn_record(),
                features=churn_record(),
                output=output or {"prediction": "yes", "probabilities": {"no": 0.3, "yes": 0.7}},
                confidence=0.7,
                latency_ms=1.0,
                warnings=[],
                request_id=request_id or f"req-{pid}",
                key=key,
            )
        ]
    )


@pytest.fixture
def churn(registry: Registry) -> Registry:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    return registry


def test_valid_items_are_stored_while_bad_ones_fail_alone(churn: Registry) -> None:
    for pid in ("p1", "p2"):
        log_prediction(churn, "churn", pid)
    result = Feedback(churn.store).ingest(
        [
            {"prediction_id": "p1", "label": "no"},
            {"prediction_id": "nope", "label": "no"},
            {"prediction_id": "p2", "label": "maybe"},
            {"label": "no"},
            {"prediction_id": "p2", "label": "yes", "time": "2026-03-05T09:00:00"},
        ]
    )
    statuses = [(i.status, i.code) for i in result.items]
    assert statuses == [
        (201, None),
        (404, "feedback.unknown_prediction"),
        (422, "feedback.invalid_label"),
        (422, "feedback.invalid_item"),
        (422, "feedback.invalid_time"),
    ]
    assert (result.stored, result.failed) == (1, 4)
    sql = FeedbackStore(churn.store)
    assert sql.get_label("p1") is not None
    assert sql.get_label("p2") is None


def test_a_key_must_be_a_string_as_in_the_predict_request(churn: Registry) -> None:
    log_prediction(churn, "churn", "p1", key="5")
    result = Feedback(churn.store).ingest(
        [{"key": 5, "model": "churn", "label": "no"}, {"key": "5", "model": "churn", "label": "no"}]
    )
    assert [(i.status, i.code) for i in result.items] == [
        (422, "feedback.invalid_item"),
        (201, None),
    ]
    assert result.items[0].message == "key must be a string"


def test_second_label_replaces_first_and_history_keeps_it(churn: Registry) -> None:
    log_prediction(churn, "churn", "p1")
    feedback = Feedback(churn.store)
    first = feedback.ingest(
        [{"prediction_id": "p1", "label": "no", "time": "2026-03-05T09:00:00Z"}]
    )
    second = feedback.ingest([{"prediction_id": "p1", "label": "yes", "source": "crm"}])
    assert first.items[0].status == 201 and second.items[0].status == 200
    sql = FeedbackStore(churn.store)
    label = sql.get_label("p1")
    assert label is not None
    assert (label.label, label.source, label.revision) == ("yes", "crm", 2)
    assert label.prediction_ts == T0 and label.output["prediction"] == "yes"
    history = sql.label_history("p1")
    assert [(h.revision, h.label, h.source) for h in history] == [(1, "no", "caller")]
    assert history[0].labelled_at == datetime(2026, 3, 5, 9, tzinfo=UTC)


def test_same_prediction_twice_in_one_batch_keeps_the_last(churn: Registry) -> None:
    log_prediction(churn, "churn", "p1")
    result = Feedback(churn.store).ingest(
        [{"prediction_id": "p1", "label": "no"}, {"prediction_id": "p1", "label": "yes"}]
    )
    assert [i.status for i in result.items] == [201, 200]
    label = FeedbackStore(churn.store).get_label("p1")
    assert label is not None and label.label == "yes"
    assert len(FeedbackStore(churn.store).label_history("p1")) == 1


def test_labels_by_key(churn: Registry) -> None:
    log_prediction(churn, "churn", "p1", key="order-1")
    log_prediction(churn, "churn", "p2", key="order-2", request_id="r")
    log_prediction(churn, "churn", "p3", key="order-2", request_id="r")
    log_prediction(churn, "churn", "p4", key="order-3")
    log_prediction(churn, "churn", "p5", key="order-3")  # a retry of the same event
    result = Feedback(churn.store).ingest(
        [
            {"key": "order-1", "label": "no"},
            {"key": "order-2", "label": "no"},
            {"key": "order-3", "label": "yes"},
            {"key": "order-9", "label": "yes"},
            {"key": "order-1", "label": "yes", "model": None},
        ],
        model="churn",
    )
    assert [(i.status, i.code) for i in result.items] == [
        (201, None),
        (409, "feedback.ambiguous_key"),
        (201, None),
        (404, "feedback.unknown_key"),
        (422, "feedback.model_required"),
    ]
    assert result.items[2].prediction_ids == ["p4", "p5"]


def test_model_mismatch_and_reserved_source(churn: Registry) -> None:
    log_prediction(churn, "churn", "p1")
    result = Feedback(churn.store).ingest(
        [
            {"prediction_id": "p1", "label": "no", "model": "other"},
            {"prediction_id": "p1", "label": "no", "source": "reviewer"},
        ]
    )
    assert [i.code for i in result.items] == ["feedback.model_mismatch", "feedback.reserved_source"]


def test_regression_labels_must_be_finite_numbers(registry: Registry) -> None:
    train = regression_table()
    registry.register(ridge_model(train), name="ridge", train=train, target="y")
    log_prediction(registry, "ridge", "r1", output={"prediction": 1.5})
    result = Feedback(registry.store).ingest(
        [
            {"prediction_id": "r1", "label": "2.5"},
            {"prediction_id": "r1", "label": "nan"},
            {"prediction_id": "r1", "label": True},
        ]
    )
    assert [i.status for i in result.items] == [201, 422, 422]
    label = FeedbackStore(registry.store).get_label("r1")
    assert label is not None and label.label == 2.5


def test_coerce_label_matches_class_text() -> None:
    ints = OutputContract("classification", classes=[0, 1])
    assert coerce_label(ints, "1") == (1, None)
    assert coerce_label(ints, 1) == (1, None)
    assert coerce_label(ints, "2")[1] is not None


def test_parse_time_refuses_naive_times() -> None:
    assert parse_time("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2026-03-01T12:00:00")
    assert parse_time(T0 + timedelta(hours=1)).hour == 10
