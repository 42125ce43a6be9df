"""Alert rules that need labels or people: a performance drop and a review SLA breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plinth.services.feedback.labels import Feedback
from plinth.services.monitoring.alerts import AlertEvaluator, AlertRules, ground_truth_conditions
from plinth.services.registry.versions import Registry
from plinth.services.review.queue import QueueView
from plinth.store import PredictionRecord
from tests.support import churn_model, churn_record, churn_table


def _predict_and_label(registry: Registry, now: datetime, n: int, wrong: bool) -> None:
    version = registry.store.get_version("churn")
    rows = [
        PredictionRecord(
            id=f"p{i:03d}", ts=now - timedelta(minutes=5, seconds=-i), model="churn",
            version=version.version, sha256=version.sha256, route="champion",
            input=churn_record(), features=churn_record(),
            output={"prediction": "yes", "probabilities": {"no": 0.1, "yes": 0.9}},
            confidence=0.9, latency_ms=1.0, warnings=[], request_id=f"r{i}",
        )
        for i in range(n)
    ]  # fmt: skip
    registry.store.insert_predictions(rows)
    label = "no" if wrong else "yes"
    result = Feedback(registry.store).ingest(
        [{"prediction_id": row.id, "label": label} for row in rows]
    )
    assert result.stored == n


@pytest.mark.parametrize(("wrong", "fires"), [(True, True), (False, False)])
def test_a_performance_drop_fires_an_alert_with_its_evidence(
    registry: Registry, wrong: bool, fires: bool
) -> None:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    now = datetime.now(UTC)
    _predict_and_label(registry, now, 60, wrong)
    evaluator = AlertEvaluator(registry.store)
    events = evaluator.evaluate(now)
    fired = [e for e in events if e.alert.rule == "performance_drop"]
    assert bool(fired) is fires
    if fires:
        evidence = fired[0].alert.evidence
        assert evidence["metric"] == "accuracy" and evidence["realised"] == 0.0
        assert evidence["labelled"] == 60


def test_too_few_labels_leave_the_performance_rule_undecided() -> None:
    report = {
        "task": "classification",
        "windows": [{"versions": [{"version": 1, "labelled": 3, "realised": {"accuracy": 0.0},
                                   "holdout": {"accuracy": 0.9}}]}],
    }  # fmt: skip
    (condition,) = ground_truth_conditions(report, None, AlertRules())
    assert condition.rule == "performance_drop" and condition.active is None


def test_review_sla_breach_is_a_condition() -> None:
    view = QueueView(
        model="churn", open=4, oldest_age_s=7200.0, median_resolution_s=None,
        resolved_counted=0, sla_s=3600.0, expected_share=None,
    )  # fmt: skip
    (condition,) = ground_truth_conditions(None, view, AlertRules())
    assert condition.rule == "review_sla" and condition.active is True
    assert condition.evidence["sla_breached"] is True
