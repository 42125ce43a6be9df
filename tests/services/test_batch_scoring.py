"""Batch scoring (``plinth predict``) logs and gates rows exactly like online traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from plinth.core.review_policy import ReviewPolicy
from plinth.errors import ModelRaisedError
from plinth.services.batch_scoring import score_frame
from plinth.services.datasets import read_table
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.review.queue import ReviewQueue
from plinth.services.review.writer import ReviewWriter
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, score
from tests.support import (
    SHOPPERS_FEATURES,
    SHOPPERS_NUMBERS,
    churn_model,
    churn_table,
    imputing_pipeline,
    numbers_only_model,
    regression_table,
    ridge_model,
    shoppers_table,
    strict_category_model,
    write_csv,
)


@pytest.fixture
def writers(registry: Registry) -> Iterator[tuple[LogWriter, ReviewWriter]]:
    log, reviews = LogWriter(registry.store), ReviewWriter(registry.store)
    log.start()
    reviews.start()
    yield log, reviews
    reviews.close()
    log.close()


def _served(registry: Registry, name: str, policy: ReviewPolicy | None) -> ServedModel:
    model = registry.load(registry.store.get_version(name))
    model.review = policy
    return model


def test_batch_rows_under_the_gate_become_review_items_like_online_answers(
    registry: Registry, writers: tuple[LogWriter, ReviewWriter]
) -> None:
    train = churn_table(0)
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    model = _served(registry, "churn", ReviewPolicy(0.75))
    frame = churn_table(3, rows=150).drop(columns=["churn"])
    frame["age"] = frame["age"].astype(object)
    frame.loc[7, "age"] = "old"  # a bad row: an error cell, no prediction, no review
    log, reviews = writers

    scored, summary = score_frame(model, frame, log, reviews=reviews)

    assert (summary.rows, summary.scored, summary.failed) == (150, 149, 1)
    assert scored.loc[7, "error"].startswith("contract.invalid")
    assert pd.isna(scored.loc[7, "review_id"])
    ok = scored.drop(index=7)
    unsure = ok[ok["review_id"] != ""]
    # The gate decided exactly as online: every row under 0.75, and only those.
    assert set(unsure.index) == set(ok.index[ok["confidence"] < 0.75])
    assert summary.reviewed == len(unsure) > 0
    assert set(unsure["review_status"]) == {"pending"}
    assert set(ok.loc[ok["review_id"] == "", "review_status"]) == {""}

    online = model  # the same records through the online scorer give the same decisions
    now = time.perf_counter()
    records = [
        {k: v for k, v in r.items() if not pd.isna(v)}
        for r in frame.drop(index=7).astype(object).to_dict(orient="records")
    ]
    online_results = score(online, [Job([r], "online", now, now + 60) for r in records])
    online_gated = [bool(res.reviews) for res in online_results]
    assert online_gated == list(ok["review_id"] != "")

    queue = ReviewQueue(registry.store)
    items = {i["id"]: i for i in queue.list_items(model="churn", limit=1000)}
    assert set(items) == set(unsure["review_id"])
    for _, row in unsure.iterrows():
        item = items[row["review_id"]]
        assert item["prediction_id"] == row["prediction_id"]
        assert item["gate"]["measure"] == "top_probability"
        assert item["gate"]["score"] == pytest.approx(row["confidence"])
        logged = registry.store.get_prediction(row["prediction_id"])
        assert logged.route == "batch"
    reviews.wait_for_context()
    assert reviews.pending_contexts() == 0
    first = queue.show(str(unsure["review_id"].iloc[0]))
    assert first["context"]["attribution"]["top"] and first["context"]["neighbours"]["training"]


def test_no_gate_no_review_columns(
    registry: Registry, writers: tuple[LogWriter, ReviewWriter]
) -> None:
    train = churn_table(0)
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    log, reviews = writers
    scored, summary = score_frame(
        _served(registry, "churn", None), churn_table(4, rows=20), log, reviews=reviews
    )
    assert "review_id" not in scored.columns and summary.reviewed == 0
    assert ReviewQueue(registry.store).list_items() == []


def test_a_regressor_is_gated_on_the_ood_reference_stored_at_registration(
    registry: Registry, writers: tuple[LogWriter, ReviewWriter]
) -> None:
    train = regression_table(0, rows=400)
    registry.register(ridge_model(train), name="prices", train=train, target="y")
    model = _served(registry, "prices", ReviewPolicy(0.99, "ood"))
    assert model.review_assets().ood is not None  # loaded, not fitted, when the gate asks
    rng = np.random.default_rng(5)
    usual = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    strange = pd.DataFrame({"a": [8.0, -9.0, 12.0], "b": [7.0, 0.0, -10.0]})
    frame = pd.concat([usual, strange], ignore_index=True)
    log, reviews = writers

    scored, summary = score_frame(model, frame, log, reviews=reviews)

    assert set(scored.index[scored["review_id"] != ""]) >= {40, 41, 42}
    assert summary.reviewed <= 3 + 4  # about 1 % of usual rows, with room to spare
    items = ReviewQueue(registry.store).list_items(model="prices")
    assert {i["gate"]["measure"] for i in items} == {"ood"}
    assert all(i["gate"]["score"] > 0.99 for i in items)


def test_rows_with_gaps_get_the_models_own_answer_or_a_flagged_imputation(
    registry: Registry, writers: tuple[LogWriter, ReviewWriter], tmp_path: Path
) -> None:
    train = shoppers_table()
    pipeline, numbers = imputing_pipeline(train), numbers_only_model(train)
    registry.register(pipeline, name="shoppers", train=train, target="bought")
    registry.register(numbers, name="numbers", train=train, target="bought")
    # What `plinth predict` reads: a file with gaps in every nullable column.
    today = shoppers_table(3, rows=120).drop(columns="bought")
    frame = read_table(write_csv(today, tmp_path / "today.csv"))
    gaps = frame[SHOPPERS_FEATURES].isna()
    log, _ = writers

    scored, summary = score_frame(_served(registry, "shoppers", None), frame, log)
    assert (summary.scored, summary.failed) == (120, 0)
    # The pipeline's imputers fill the gaps: the answers are its own, bit for bit.
    own = pipeline.predict_proba(frame[SHOPPERS_FEATURES])
    assert scored["probability_yes"].tolist() == own[:, 1].tolist()
    assert gaps.any(axis=1).sum() > 20
    flagged = scored["warnings"].str.contains("contract.null_passed")
    assert flagged.tolist() == gaps.any(axis=1).tolist()
    assert not scored["warnings"].str.contains("contract.imputed").any()

    model = _served(registry, "numbers", None)
    scored, summary = score_frame(model, frame[SHOPPERS_NUMBERS], log)
    assert (summary.scored, summary.failed) == (120, 0)
    filled = frame[SHOPPERS_NUMBERS].fillna({f.name: f.impute for f in model.contract.fields})
    assert scored["probability_yes"].tolist() == numbers.predict_proba(filled)[:, 1].tolist()
    flagged = scored["warnings"].str.contains("contract.imputed")
    assert flagged.tolist() == gaps[SHOPPERS_NUMBERS].any(axis=1).tolist()
    assert not scored["warnings"].str.contains("contract.null_passed").any()


def _alone(model: ServedModel, frame: pd.DataFrame) -> list[tuple[str, Any]]:
    """Each row scored on its own through the online scorer: (error code or "", answer)."""
    now = time.perf_counter()
    records = [
        {k: v for k, v in r.items() if not pd.isna(v)}
        for r in frame.astype(object).to_dict(orient="records")
    ]
    results = score(model, [Job([r], "alone", now, now + 60) for r in records])
    return [(res.error.code, None) if res.error else ("", res.answers[0]) for res in results]


def test_chunks_split_around_bad_rows_and_review_ids_point_at_committed_rows(
    registry: Registry, writers: tuple[LogWriter, ReviewWriter]
) -> None:
    """Many small chunks with their log commits overlapping: the contract's bad rows (the
    first one too) fail alone, the model's bad rows (an encoder that raises on a category
    the contract lets through) fail alone, and every other row gets the answer it gets on
    its own; every review id in the output is a stored item whose prediction is logged."""
    train = churn_table(0)
    registry.register(strict_category_model(train), name="strict", train=train, target="churn")
    model = _served(registry, "strict", ReviewPolicy(0.8))
    for spec in model.contract.fields:
        if spec.name == "city":
            spec.on_unseen = "pass"  # the registry said reject; let the encoder see it
    frame = churn_table(6, rows=400).drop(columns=["churn"])
    frame["age"] = frame["age"].astype(object)
    refused = [0, 5, 6, 130, 399]
    frame.loc[refused, "age"] = "old"
    raising = [64, 65, 200]
    frame.loc[raising, "city"] = "tokyo"  # unseen: passed through, the encoder raises
    log, reviews = writers

    scored, summary = score_frame(model, frame, log, reviews=reviews, chunk_rows=32)

    alone = _alone(model, frame)
    failed = {i: code for i, (code, _) in enumerate(alone) if code}
    assert failed == {i: "contract.invalid" for i in refused} | {
        i: ModelRaisedError.code for i in raising
    }
    assert list(scored.columns[-9:]) == [
        "prediction_id", "prediction", "probability_no", "probability_yes", "confidence",
        "review_id", "review_status", "warnings", "error",
    ]  # fmt: skip
    for i, (code, answer) in enumerate(alone):
        row = scored.loc[i]
        if code:
            assert row["error"].startswith(code) and pd.isna(row["prediction"])
            continue
        assert answer is not None and row["error"] == ""
        assert row["prediction"] == answer["prediction"]
        assert row["probability_yes"] == answer["probabilities"]["yes"]
        assert row["confidence"] == answer["confidence"]
        codes = ",".join(sorted({w["code"] for w in answer["warnings"]}))
        assert row["warnings"] == codes
    assert scored.loc[5, "error"] == "contract.invalid (age: contract.wrong_type)"
    assert (summary.scored, summary.failed) == (392, 8)

    assert registry.store.count_predictions() == 392  # no row logged twice by a split
    sent = scored[scored["review_id"].fillna("") != ""]
    assert summary.reviewed == len(sent) > 20
    queue = ReviewQueue(registry.store)
    for review_id, prediction_id in zip(sent["review_id"], sent["prediction_id"], strict=True):
        assert queue.show(review_id)["prediction_id"] == prediction_id
        assert registry.store.get_prediction(prediction_id).route == "batch"
