"""Live performance: delayed labels land in the window of their prediction."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from plinth.core.metrics import classification_metrics
from plinth.services.feedback.labels import Feedback
from plinth.services.feedback.performance import Performance, align
from plinth.services.registry.versions import Registry
from plinth.store import PredictionRecord
from plinth.store.feedback import FeedbackStore
from tests.support import churn_model, churn_record, churn_table, regression_table, ridge_model

TODAY = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def _log(registry: Registry, name: str, ids: list[str], ts: datetime, outputs: list[dict]) -> None:
    version = registry.store.get_version(name)
    registry.store.insert_predictions(
        [
            PredictionRecord(
                id=pid,
                ts=ts + timedelta(seconds=i),
                model=name,
                version=version.version,
                sha256=version.sha256,
                route="champion",
                input=churn_record(),
                features=churn_record(),
                output=out,
                confidence=None,
                latency_ms=1.0,
                warnings=[],
                request_id=pid,
            )
            for i, (pid, out) in enumerate(zip(ids, outputs, strict=True))
        ]
    )


def test_delayed_labels_count_for_the_window_of_their_prediction(registry: Registry) -> None:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    rng = np.random.default_rng(0)
    p_yes = rng.uniform(0, 1, 50)
    outputs = [
        {"prediction": "yes" if p > 0.5 else "no", "probabilities": {"no": 1 - p, "yes": p}}
        for p in p_yes
    ]
    today = [f"t{i:02d}" for i in range(50)]
    yesterday = [f"y{i:02d}" for i in range(20)]
    _log(registry, "churn", today, TODAY, outputs)
    _log(registry, "churn", yesterday, TODAY - timedelta(days=1), outputs[:20])
    # Labels for 60 % of today's predictions, three days later.
    labelled = today[:30]
    truth = rng.choice(["no", "yes"], 30).tolist()
    later = (TODAY + timedelta(days=3)).isoformat()
    result = Feedback(registry.store).ingest(
        [
            {"prediction_id": pid, "label": y, "time": later}
            for pid, y in zip(labelled, truth, strict=True)
        ]
    )
    assert result.stored == 30

    report = Performance(registry.store).report(
        "churn", window=timedelta(days=1), windows=5, end=TODAY + timedelta(days=3, hours=1)
    )
    by_start = {w["start"]: w["versions"] for w in report["windows"]}
    day = align(TODAY, timedelta(days=1)) - timedelta(days=1)
    (entry,) = by_start[day.isoformat()]
    assert (entry["predictions"], entry["labelled"], entry["coverage"]) == (50, 30, 0.6)
    assert entry["label_delay_s"]["median"] == pytest.approx(3 * 86400, abs=60)
    expected = classification_metrics(
        truth, np.column_stack([1 - p_yes[:30], p_yes[:30]]), ["no", "yes"]
    )
    assert entry["realised"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert entry["realised"]["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert "accuracy" in entry["holdout"] and "accuracy" in entry["vs_holdout"]
    band = entry["estimated"]["accuracy"]
    assert band["lower"] <= band["value"] <= band["upper"]
    assert entry["estimated_from"] == 50
    (before,) = by_start[(day - timedelta(days=1)).isoformat()]
    assert (before["predictions"], before["labelled"], before["coverage"]) == (20, 0, 0.0)
    assert before["realised"] is None
    # The days the labels arrived on hold no predictions, so nothing is reported there.
    for offset in (1, 2, 3):
        assert by_start[(day + timedelta(days=offset)).isoformat()] == []


def test_regression_performance_and_bad_windows(registry: Registry) -> None:
    train = regression_table()
    registry.register(ridge_model(train), name="ridge", train=train, target="y")
    _log(registry, "ridge", ["a", "b"], TODAY, [{"prediction": 1.0}, {"prediction": 3.0}])
    Feedback(registry.store).ingest(
        [{"prediction_id": "a", "label": 2.0}, {"prediction_id": "b", "label": 3.0}]
    )
    report = Performance(registry.store).report("ridge", windows=1, end=TODAY)
    (entry,) = report["windows"][0]["versions"]
    assert entry["realised"]["mae"] == pytest.approx(0.5)
    assert "estimated" not in entry
    with pytest.raises(Exception, match="do not make a report"):
        Performance(registry.store).report("ridge", windows=0)


def test_a_trailing_window_just_after_a_boundary_holds_the_last_hour(registry: Registry) -> None:
    """plinth monitor's performance is of the last hour: at 10:00:05 it still shows 9:5x."""
    train = regression_table()
    registry.register(ridge_model(train), name="ridge", train=train, target="y")
    boundary = align(TODAY, timedelta(hours=1))
    _log(registry, "ridge", ["a", "b"], boundary - timedelta(minutes=5), [{"prediction": 1.0}] * 2)
    just_after = boundary + timedelta(seconds=5)
    hour = timedelta(hours=1)
    aligned = Performance(registry.store).report("ridge", window=hour, windows=1, end=just_after)
    assert aligned["windows"][0]["versions"] == []  # the hour that has just begun
    trailing = Performance(registry.store).report(
        "ridge", window=hour, windows=1, end=just_after, trailing=True
    )
    (entry,) = trailing["windows"][0]["versions"]
    assert entry["predictions"] == 2
    assert trailing["windows"][0]["end"] == just_after.isoformat()


def test_a_windows_outputs_stream_in_instead_of_being_held(registry: Registry) -> None:
    # The live-performance gauges read up to 50,000 outputs a minute in every worker; as a
    # list of dicts that was 20 MB at once, left in the worker's resident memory.
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    outputs = [{"prediction": "no", "probabilities": {"no": 0.75, "yes": 0.25}}] * 20_000
    _log(registry, "churn", [f"r{i:05d}" for i in range(20_000)], TODAY, outputs)
    version = registry.store.get_version("churn").version
    day = align(TODAY, timedelta(days=1))
    store = FeedbackStore(registry.store)
    start, end = day - timedelta(days=1), day
    tracemalloc.start()
    try:
        read = store.prediction_outputs("churn", start, end, version, 50_000)
        count = sum(1 for output in read if output["probabilities"]["yes"] == 0.25)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 3 * 2**20, f"{peak / 2**20:.1f} MB held at once"
