"""[models.NAME.log]: redaction and keyed hashes before storage, replay's refusal, retention
in the server's own background work, and forgetting a subject; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from plinth.config.policies import parse_policies
from plinth.core.privacy import keyed_hash
from plinth.errors import ConfigError, PredictionNotFoundError, ReplayRedactedError
from plinth.services.feedback.labels import Feedback
from plinth.services.privacy import LogRetention, forget
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.replay import replay
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, score
from plinth.store import Store
from plinth.store.feedback import FeedbackStore, LabelRow, ReviewRow
from tests.support import churn_model, churn_record, churn_table

KEY = "a-long-secret-key"
POLICY = """
[models.churn.log]
redact = ["email", "city"]
hash = ["customer_id", "plan"]
retention = "30d"
"""


def _model(registry: Registry, policy: str | None = POLICY, name: str = "churn") -> ServedModel:
    train = churn_table()
    model = registry.load(
        registry.register(churn_model(train), name=name, train=train, target="churn")
    )
    if policy is not None:
        model.log_policy = parse_policies(policy, log_hash_key=KEY).log(name)
    return model


def _log(
    store: Store, model: ServedModel, records: list[dict[str, object]], key: str | None = None
) -> list[str]:
    now = time.perf_counter()
    (result,) = score(model, [Job(records, "req-1", now, now + 60, key=key)])
    assert result.error is None, result.error
    writer = LogWriter(store)
    writer.start()
    writer.submit(result.rows).result(timeout=30)
    writer.close()
    # The caller's answer keeps its own warnings: the log's marks are for the row only.
    assert all(w["code"] not in ("log.redacted", "log.hashed") for a in result.answers
               for w in a["warnings"])  # fmt: skip
    return [a["prediction_id"] for a in result.answers]


@pytest.fixture
def churn(registry: Registry) -> ServedModel:
    return _model(registry)


def test_redacted_fields_never_reach_the_store_and_hashed_ones_join(
    registry: Registry, churn: ServedModel
) -> None:
    record = churn_record(email="ada@example.com", customer_id="c-17", city="lyon")
    (prediction_id,) = _log(registry.store, churn, [record])
    stored = registry.store.get_prediction(prediction_id)
    assert "email" not in stored.input and "city" not in stored.input
    assert "city" not in stored.features
    assert stored.input["customer_id"] == keyed_hash(KEY.encode(), "c-17")
    assert stored.input["plan"] == stored.features["plan"] == keyed_hash(KEY.encode(), "pro")
    assert stored.input["age"] == 42  # untouched fields are kept as sent
    marks = {(w["code"], w["field"]) for w in stored.warnings}
    assert marks >= {
        ("log.redacted", "email"),
        ("log.redacted", "city"),
        ("log.hashed", "customer_id"),
        ("log.hashed", "plan"),
    }
    # Nowhere in the row, in any column: the raw values are gone.
    raw = repr(registry.store.get_prediction(prediction_id))
    assert "ada@example.com" not in raw and "c-17" not in raw and "lyon" not in raw


def test_replay_says_which_redacted_fields_make_exact_replay_impossible(
    registry: Registry, churn: ServedModel
) -> None:
    (prediction_id,) = _log(registry.store, churn, [churn_record(email="ada@example.com")])
    with pytest.raises(ReplayRedactedError) as info:
        replay(registry.store, registry, prediction_id)
    assert info.value.code == "replay.redacted" and info.value.status == 409
    assert {(p.code, p.field) for p in info.value.problems} == {
        ("log.redacted", "city"),
        ("log.hashed", "plan"),
    }  # email and customer_id are not model features: they do not stop a replay


def test_a_redacted_extra_field_still_replays_exactly(registry: Registry) -> None:
    model = _model(registry, '[models.churn.log]\nredact = ["email"]\n')
    (prediction_id,) = _log(registry.store, model, [churn_record(email="ada@example.com")])
    result = replay(registry.store, registry, prediction_id)
    assert result.identical, result.differences
    assert "email" not in result.record.input


def test_retention_deletes_each_models_old_rows_under_a_lease(registry: Registry) -> None:
    store = registry.store
    churn = _model(registry, None)
    other = _model(registry, None, name="other")
    ids = _log(registry.store, churn, [churn_record()] * 3)
    kept = _log(registry.store, other, [churn_record()] * 2)
    policies = parse_policies('[models.churn.log]\nretention = "1d"\n')
    later = datetime.now(UTC) + timedelta(days=2)
    first = LogRetention(store, policies, holder="a", clock=lambda: later)
    second = LogRetention(store, policies, holder="b", clock=lambda: later)
    assert first.active
    assert second.try_run() == {"churn": 3}  # nobody held the lease yet
    assert first.try_run() is None  # b holds it: one process prunes at a time
    assert store.count_predictions("churn") == 0
    assert store.count_predictions("other") == len(kept) == 2
    assert not LogRetention(store, parse_policies("")).active
    assert all(store.count_predictions("churn") == 0 for _ in ids)
    # Rows within the window stay.
    fresh = _log(registry.store, churn, [churn_record()])
    soon = LogRetention(store, policies, holder="c", clock=lambda: datetime.now(UTC))
    assert soon.run_once() == {"churn": 0}
    assert store.get_prediction(fresh[0]).model == "churn"


def test_forget_deletes_every_record_label_and_review_item_of_a_subject(
    registry: Registry,
) -> None:
    store = registry.store
    churn = _model(registry, None)
    other = _model(registry, None, name="other")
    mine = _log(registry.store, churn, [churn_record(), churn_record(age=30)], key="subject-1")
    mine += _log(registry.store, other, [churn_record()], key="subject-1")
    theirs = _log(registry.store, churn, [churn_record()], key="subject-2")
    feedback = FeedbackStore(store)
    now = datetime.now(UTC)
    for prediction_id in (mine[0], theirs[0]):
        row = store.get_prediction(prediction_id)
        for label in ("yes", "no"):  # twice: the first becomes history
            feedback.upsert_labels(
                [LabelRow(prediction_id, row.model, row.version, row.ts, row.output, label,
                          "caller", now, now)], now,
            )  # fmt: skip
        feedback.insert_reviews(
            [ReviewRow(f"r-{prediction_id}", prediction_id, row.model, row.version, now,
                       "top_probability", 0.7, 0.5)]
        )  # fmt: skip

    gone = forget(store, "subject-1")
    assert (gone.predictions, gone.labels, gone.label_history, gone.review_items) == (3, 1, 1, 1)
    for prediction_id in mine:
        with pytest.raises(PredictionNotFoundError, match=prediction_id):
            store.get_prediction(prediction_id)
    assert feedback.get_label(mine[0]) is None and feedback.get_review(f"r-{mine[0]}") is None
    assert store.get_prediction(theirs[0]).key == "subject-2"
    assert feedback.get_label(theirs[0]) is not None
    assert feedback.get_review(f"r-{theirs[0]}") is not None
    assert forget(store, "subject-1").total == 0  # idempotent


def test_a_hashed_request_key_is_stored_hashed_and_forgotten_by_its_raw_value(
    registry: Registry,
) -> None:
    store = registry.store
    policy = '[models.churn.log]\nhash = ["customer_id"]\nhash_request_key = true\n'
    policies = parse_policies(policy, log_hash_key=KEY)
    churn = _model(registry, policy)
    plain = _model(registry, None, name="other")  # keeps its keys as sent
    hashed_ids = _log(store, churn, [churn_record(customer_id="c-17")], key="c-17")
    plain_ids = _log(store, plain, [churn_record()], key="c-17")
    stored = store.get_prediction(hashed_ids[0])
    assert stored.key == keyed_hash(KEY.encode(), "c-17") == stored.input["customer_id"]
    assert store.get_prediction(plain_ids[0]).key == "c-17"

    # Labels by key take the raw value as well.
    feedback = Feedback(store, stored_key=policies.stored_key)
    result = feedback.ingest([{"key": "c-17", "label": "yes"}], model="churn")
    assert [o.status for o in result.items] == [201], result.to_dict()

    gone = forget(store, "c-17", who="erin", policies=policies)
    assert (gone.predictions, gone.labels) == (2, 1)
    for prediction_id in hashed_ids + plain_ids:
        with pytest.raises(PredictionNotFoundError):
            store.get_prediction(prediction_id)
    # Without the policies the hashed rows are out of reach of the raw value: the reason.
    again = _log(store, churn, [churn_record()], key="c-17")
    assert forget(store, "c-17").predictions == 0
    assert store.get_prediction(again[0]).key != "c-17"


def test_hash_request_key_needs_the_secret_key() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_policies("[models.churn.log]\nhash_request_key = true\n")
    assert "config.log_hash_key" in [p.code for p in refused.value.problems]
