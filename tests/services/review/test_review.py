"""The review gate, the queue (leases, concurrent reviewers), reviewer context and tokens."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from plinth.core.review import expected_review_share
from plinth.core.review_policy import ReviewPolicy
from plinth.errors import PlinthError
from plinth.services.auth import Tokens, parse_env_tokens
from plinth.services.feedback.labels import Feedback
from plinth.services.feedback.performance import Performance
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.review.queue import ReviewQueue
from plinth.services.review.writer import ReviewWriter
from plinth.services.serving.scoring import Job, score
from plinth.store import Store
from plinth.store.feedback import FeedbackStore
from tests.support import churn_model, churn_record, churn_table, regression_table, ridge_model


def served(registry: Registry, name: str, policy: ReviewPolicy | None) -> ServedModel:
    model = registry.load(registry.store.get_version(name))
    model.review = policy
    return model


def run(
    model: ServedModel, records: list[Any], writer: ReviewWriter | None
) -> list[dict[str, Any]]:
    """Score like the server does: log rows first, then the review items."""
    now = time.perf_counter()
    (result,) = score(model, [Job(records, "req", now, now + 60)])
    assert result.error is None
    model_store = writer.sql.store if writer is not None else None
    if model_store is not None:
        model_store.insert_predictions(result.rows)
        writer.submit(result.reviews).result(timeout=30)  # type: ignore[union-attr]
    return result.answers


@pytest.fixture
def churn(registry: Registry) -> Registry:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    return registry


@pytest.fixture
def writer(registry: Registry) -> Any:
    w = ReviewWriter(registry.store)
    w.start()
    yield w
    w.close()


def test_gate_marks_unsure_answers_and_stores_items(churn: Registry, writer: ReviewWriter) -> None:
    model = served(churn, "churn", ReviewPolicy(0.75))
    records = [churn_record(age=a, tenure=t) for a in (20, 45, 70) for t in (1.0, 30.0, 90.0)]
    answers = run(model, records, writer)
    gated = [a for a in answers if "review" in a]
    assert gated and len(gated) < len(answers)
    assert all(a["confidence"] < 0.75 for a in gated)
    assert all(a["confidence"] >= 0.75 for a in answers if "review" not in a)
    queue = ReviewQueue(churn.store)
    pending = queue.list_items(model="churn")
    assert {i["id"] for i in pending} == {a["review"]["id"] for a in gated}
    assert all(a["review"]["status"] == "pending" for a in gated)
    writer.wait_for_context()
    shown = queue.show(gated[0]["review"]["id"])
    assert shown["input"] == records[answers.index(gated[0])]
    assert set(shown["output"]["probabilities"]) == {"no", "yes"}
    context = shown["context"]
    assert context["attribution"]["method"] == "shapley_sampling"
    assert len(context["neighbours"]["training"]) == 5


def test_no_policy_no_gate(churn: Registry) -> None:
    answers = run(served(churn, "churn", None), [churn_record()], None)
    assert "review" not in answers[0]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_claim_lease_resolve_and_label(churn: Registry, writer: ReviewWriter) -> None:
    run(served(churn, "churn", ReviewPolicy(1.0)), [churn_record(), churn_record(age=70)], writer)
    clock = Clock()
    queue = ReviewQueue(churn.store, lease=timedelta(minutes=5), clock=clock)
    first, second = (i["id"] for i in queue.list_items(model="churn"))
    assert queue.claim(first, "ann")["claimed_by"] == "ann"
    with pytest.raises(PlinthError) as held:
        queue.claim(first, "bob")
    assert held.value.code == "review.claimed" and held.value.status == 409
    assert [i["id"] for i in queue.list_items(status="pending")] == [second]
    clock.now += timedelta(minutes=6)  # the lease ran out
    assert queue.claim(first, "bob")["claimed_by"] == "bob"
    with pytest.raises(PlinthError) as taken:
        queue.resolve(first, "ann", "approve")
    assert taken.value.code == "review.claimed"
    done = queue.resolve(first, "bob", "approve", note="looks right")
    assert (done["status"], done["action"], done["resolved_by"]) == ("resolved", "approve", "bob")
    with pytest.raises(PlinthError) as again:
        queue.resolve(first, "bob", "correct", "no")
    assert again.value.code == "review.already_resolved"
    corrected = queue.resolve(second, "cy", "correct", "no", "customer stayed")
    assert corrected["label"] == "no"
    sql = FeedbackStore(churn.store)
    label = sql.get_label(queue.show(second)["prediction_id"])
    assert label is not None and (label.label, label.source) == ("no", "reviewer")
    approved = sql.get_label(queue.show(first)["prediction_id"])
    assert approved is not None and approved.label == queue.show(first)["output"]["prediction"]
    with pytest.raises(PlinthError) as bad:
        queue.resolve(second, "cy", "maybe")
    assert bad.value.code == "review.invalid_action"
    with pytest.raises(PlinthError) as unknown:
        queue.claim("nope", "ann")
    assert unknown.value.code == "review.not_found"
    (numbers,) = queue.numbers("churn")
    assert (numbers.open, numbers.resolved_counted) == (0, 2)


def test_a_label_from_any_source_closes_the_pending_review_item(
    churn: Registry, writer: ReviewWriter
) -> None:
    """Issue 11, item 6: labels from `plinth feedback` / POST /v1/feedback answer the review
    question too; the queue (and its SLA alert) must not wait for them."""
    records = [churn_record(), churn_record(age=70), churn_record(age=30)]
    run(served(churn, "churn", ReviewPolicy(1.0)), records, writer)
    queue = ReviewQueue(churn.store)
    first, second, third = queue.list_items(model="churn")
    assert queue.claim(second["id"], "ann")["claimed_by"] == "ann"
    feedback = Feedback(churn.store)
    stored = feedback.ingest(
        [
            {"prediction_id": first["prediction_id"], "label": "yes"},
            {"prediction_id": second["prediction_id"], "label": "no"},
        ],
        source="crm",
    )
    assert stored.failed == 0
    closed = queue.show(first["id"])
    assert (closed["status"], closed["action"], closed["resolved_by"]) == (
        "resolved",
        "labelled",
        "label:crm",
    )
    assert closed["label"] == "yes" and "crm" in closed["note"]
    assert queue.show(second["id"])["status"] == "resolved"  # claimed or not
    with pytest.raises(PlinthError) as late:
        queue.resolve(second["id"], "ann", "approve")
    assert late.value.code == "review.already_resolved"
    assert [i["id"] for i in queue.list_items(status="pending")] == [third["id"]]
    (numbers,) = queue.numbers("churn")
    assert numbers.open == 1
    # A reviewer's resolution keeps its own outcome when its label is stored.
    done = queue.resolve(third["id"], "bob", "correct", "no")
    assert (done["action"], done["resolved_by"]) == ("correct", "bob")


def test_concurrent_reviewers_resolve_each_item_once(
    churn: Registry, writer: ReviewWriter, database_url: str
) -> None:
    records = [churn_record(age=18 + i) for i in range(24)]
    run(served(churn, "churn", ReviewPolicy(1.0)), records, writer)
    ids = [i["id"] for i in ReviewQueue(churn.store).list_items(limit=1000)]
    assert len(ids) == 24
    wins: dict[str, list[str]] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def reviewer(name: str) -> None:
        store = Store(database_url)  # each reviewer its own connection pool
        queue = ReviewQueue(store)
        barrier.wait()
        try:
            for review_id in ids:
                try:
                    queue.claim(review_id, name)
                    queue.resolve(review_id, name, "approve")
                except PlinthError as exc:
                    assert exc.code in ("review.claimed", "review.already_resolved")
                    continue
                with lock:
                    wins.setdefault(review_id, []).append(name)
        finally:
            store.close()

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(wins) == sorted(ids)
    assert all(len(names) == 1 for names in wins.values())
    resolved = ReviewQueue(churn.store).list_items(status="resolved", limit=1000)
    assert {r["id"]: r["resolved_by"] for r in resolved} == {k: v[0] for k, v in wins.items()}


def test_attribution_of_a_linear_model_is_exact(registry: Registry) -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "c": 0.0})
    train["c"] = rng.normal(size=300)
    train["y"] = 3 * train["a"] - 2 * train["b"] + 0.5 * train["c"]
    model = LinearRegression().fit(train[["a", "b", "c"]], train["y"])
    registry.register(model, name="linear", train=train, target="y")
    served_model = served(registry, "linear", None)
    writer = ReviewWriter(registry.store)
    row = {"a": 1.0, "b": -1.0, "c": 2.0}
    context = writer.builder.build(served_model, row, {"prediction": 7.0})
    background = pd.DataFrame(served_model.review_assets().background)
    attribution = context["attribution"]
    for feature, weight in {"a": 3.0, "b": -2.0, "c": 0.5}.items():
        expected = weight * (row[feature] - background[feature].mean())
        assert attribution["values"][feature] == pytest.approx(expected, abs=1e-9)
    assert [t["feature"] for t in attribution["top"]] == ["a", "b", "c"]
    assert sum(attribution["values"].values()) == pytest.approx(
        attribution["output"] - attribution["base"]
    )


def test_attribution_finds_a_tree_models_decisive_feature(registry: Registry) -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(size=(400, 4)), columns=["w", "x", "decisive", "z"])
    train["label"] = np.where(train["decisive"] > 0, "yes", "no")
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    tree.fit(train[["w", "x", "decisive", "z"]], train["label"])
    registry.register(tree, name="tree", train=train, target="label")
    context = ReviewWriter(registry.store).builder.build(
        served(registry, "tree", None),
        {"w": 0.1, "x": -0.3, "decisive": 1.5, "z": 0.2},
        {"prediction": "yes"},
    )
    top = context["attribution"]["top"]
    assert top[0]["feature"] == "decisive" and top[0]["value"] > 0.3
    assert all(abs(t["value"]) < 0.05 for t in top[1:])
    nearest = context["neighbours"]["training"][0]
    assert nearest["label"] == "yes"


def test_breast_cancer_gate_share_and_estimated_accuracy(
    registry: Registry, writer: ReviewWriter
) -> None:
    data = load_breast_cancer(as_frame=True).frame
    data = data.sample(frac=1.0, random_state=0).reset_index(drop=True)
    data.columns = [c.replace(" ", "_") for c in data.columns]
    train, holdout, traffic = data.iloc[:250], data.iloc[250:410], data.iloc[410:]
    features = [c for c in data.columns if c != "target"]
    forest = RandomForestClassifier(n_estimators=30, max_depth=3, random_state=0)
    forest.fit(train[features], train["target"])
    registry.register(forest, name="cancer", train=train, target="target", holdout=holdout)
    record = registry.store.get_version("cancer")
    holdout_conf = forest.predict_proba(holdout[features]).max(axis=1)
    expected = expected_review_share(holdout_conf, 0.8, window=len(traffic))

    model = served(registry, "cancer", ReviewPolicy(0.8))
    answers = run(model, traffic[features].to_dict(orient="records"), writer)
    share = sum("review" in a for a in answers) / len(answers)
    assert expected.lower <= share <= expected.upper, (share, expected)
    assert record.metadata["estimator"]["fitted_on"] == "holdout"

    from plinth.services.feedback.labels import Feedback

    Feedback(registry.store).ingest(
        [
            {"prediction_id": a["prediction_id"], "label": int(y)}
            for a, y in zip(answers, traffic["target"], strict=True)
        ]
    )
    report = Performance(registry.store).report("cancer", windows=1)
    (entry,) = report["windows"][-1]["versions"]
    realised = entry["realised"]["accuracy"]
    band = entry["estimated"]["accuracy"]
    assert band["lower"] <= realised <= band["upper"], (realised, band)
    assert band["realised_inside"] is True


def test_tokens_create_list_revoke(store: Store) -> None:
    tokens = Tokens(store, "admin:from-env")
    row, secret = tokens.create("reviewer", "ann")
    assert secret.startswith("plt_") and row.token_hash != secret
    table = tokens.table()
    assert sorted(role for role, _ in table.values()) == ["admin", "reviewer"]
    tokens.revoke(row.id)
    assert [r for r, _ in tokens.table().values()] == ["admin"]
    with pytest.raises(PlinthError) as missing:
        tokens.revoke(row.id)
    assert missing.value.code == "auth.token_not_found"
    with pytest.raises(PlinthError) as bad_role:
        tokens.create("king")
    assert bad_role.value.code == "auth.invalid_role"
    with pytest.raises(PlinthError) as bad_env:
        parse_env_tokens("root:x")
    assert bad_env.value.code == "config.tokens"


def test_versions_from_before_stored_assets_still_gate_and_explain(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """The older layout kept background and neighbours inline and had no OOD reference:
    the context still works, and an ood gate builds the reference once, saying so."""
    train = regression_table(0, rows=400)
    record = registry.register(ridge_model(train), name="old", train=train, target="y")
    pointer = record.metadata["review_context"]["assets"]
    document = orjson.loads(registry.artifacts.path(pointer["sha256"]).read_bytes())
    legacy = {k: document[k] for k in ("background", "neighbours")}
    registry.store.update_version_metadata("old", 1, {**record.metadata, "review_context": legacy})
    model = served(registry, "old", ReviewPolicy(0.99, "ood"))
    assert model.review_assets().source == "inline" and model.review_assets().ood is None
    strange = {"a": 9.0, "b": -9.0}
    with caplog.at_level(logging.WARNING, logger="plinth.review"):
        first = run(model, [strange, {"a": 0.0, "b": 0.0}], None)
        second = run(model, [strange], None)
    assert "review" in first[0] and "review" not in first[1] and "review" in second[0]
    built = [r for r in caplog.records if "registered before the OOD reference" in r.message]
    assert len(built) == 1  # once per worker, not per batch
    context = ReviewWriter(registry.store).builder.build(model, strange, {"prediction": 1.0})
    assert context["attribution"]["top"] and len(context["neighbours"]["training"]) == 5

    registry.store.update_version_metadata("old", 1, {**record.metadata, "review_context": {}})
    bare = served(registry, "old", ReviewPolicy(0.99, "ood"))
    with caplog.at_level(logging.ERROR, logger="plinth.review"):
        answers = run(bare, [strange], None)
        run(bare, [strange], None)
    assert "review" not in answers[0]  # refused, never a failed reply
    refused = [r for r in caplog.records if "review.no_ood_reference" in r.getMessage()]
    assert len(refused) == 1  # logged once for the version, not once per batch
