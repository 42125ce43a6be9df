from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from pandas.testing import assert_frame_equal
from prometheus_client.parser import text_string_to_metric_families

import plinth
from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.core.contract import Contract
from plinth.http.app import create_app
from tests.support import (
    SHOPPERS_FEATURES,
    SHOPPERS_NUMBERS,
    churn_model,
    churn_record,
    churn_table,
    imputing_pipeline,
    numbers_only_model,
    shoppers_table,
)


def _codes(body: dict[str, Any]) -> set[tuple[Any, Any, str]]:
    return {(p.get("record"), p.get("field"), p["code"]) for p in body["error"]["problems"]}


def test_predict_returns_one_answer_per_record_and_logs_it(client: TestClient) -> None:
    reply = client.post(
        "/v1/models/churn/predict", json={"records": [churn_record(), churn_record(age=30)]}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "churn" and body["version"] == 1
    assert len(body["predictions"]) == 2
    answer = body["predictions"][0]
    assert answer["prediction"] in ("no", "yes")
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
    assert answer["route"] == "champion" and answer["warnings"] == []
    logged = client.get(f"/v1/predictions/{answer['prediction_id']}")
    assert logged.status_code == 200
    record = logged.json()
    assert record["input"] == churn_record()
    assert record["output"]["probabilities"] == answer["probabilities"]
    assert record["request_id"] == body["request_id"]


def test_repairs_are_served_and_flagged(client: TestClient) -> None:
    record = churn_record(city="rome", age=130, unexpected="x")
    del record["income"]
    reply = client.post("/v1/models/churn/predict", json={"records": [record]})
    assert reply.status_code == 200, reply.text
    codes = {(w["field"], w["code"]) for w in reply.json()["predictions"][0]["warnings"]}
    assert ("income", "contract.null_passed") in codes  # to the pipeline's own imputer
    assert ("city", "contract.unseen_category") in codes
    assert ("age", "contract.out_of_range") in codes
    assert any(code == "contract.extra_field" for _, code in codes)


def test_every_problem_of_every_record_is_listed_at_once(client: TestClient) -> None:
    bad_one = churn_record(age="old", plan=None)
    bad_two = churn_record(tenure=[1, 2])
    del bad_two["city"]
    reply = client.post(
        "/v1/models/churn/predict", json={"records": [churn_record(), bad_one, bad_two]}
    )
    assert reply.status_code == 422
    body = reply.json()
    assert body["error"]["code"] == "contract.invalid"
    assert _codes(body) == {
        (1, "age", "contract.wrong_type"),
        (1, "plan", "contract.null_value"),
        (2, "tenure", "contract.wrong_type"),
        (2, "city", "contract.missing_field"),
    }
    assert all(p["hint"] for p in body["error"]["problems"])


def test_unseen_category_is_rejected_when_the_pipeline_cannot_handle_it(client: TestClient) -> None:
    reply = client.post("/v1/models/strict/predict", json={"records": [churn_record(city="rome")]})
    assert reply.status_code == 422
    assert _codes(reply.json()) == {(0, "city", "contract.unseen_category")}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "request.malformed_json"),
        (b"[1, 2]", "request.invalid_body"),
        (b'{"records": {}}', "request.invalid_body"),
        (b'{"records": []}', "request.invalid_body"),
        (b'{"rows": []}', "request.invalid_body"),
    ],
)
def test_malformed_bodies_get_422_with_a_code(client: TestClient, body: bytes, code: str) -> None:
    reply = client.post("/v1/models/churn/predict", content=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("key", "said"),
    [(5, "a number (5)"), (2**53 + 1, "a number (9007199254740993)"), (True, "a boolean")],
)
def test_a_request_key_must_be_a_string(client: TestClient, key: Any, said: str) -> None:
    # Refused rather than converted: a numeric id may have lost digits in a JavaScript client
    # already, and the key routes the canary and names the request in feedback.
    reply = client.post("/v1/models/churn/predict", json={"records": [churn_record()], "key": key})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "request.invalid_body"
    (problem,) = error["problems"]
    assert (problem["code"], problem["field"]) == ("request.invalid_key", "key")
    assert problem["message"] == f"'key' must be a string, not {said}"
    assert problem["hint"] == 'Send the key as a JSON string, e.g. "key": "order-1234".'
    text = client.post(
        "/v1/models/churn/predict", json={"records": [churn_record()], "key": str(key)}
    )
    assert text.status_code == 200
    logged = client.get(f"/v1/predictions/{text.json()['predictions'][0]['prediction_id']}")
    assert logged.json()["key"] == str(key)


def test_too_many_records_is_413(client: TestClient) -> None:
    reply = client.post("/v1/models/churn/predict", json={"records": [churn_record()] * 10_001})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "request.too_many_records"


def test_unknown_model_and_prediction_are_404_with_codes(client: TestClient) -> None:
    reply = client.post("/v1/models/nope/predict", json={"records": [{}]})
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "registry.model_not_found"
    missing = client.get("/v1/predictions/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "log.prediction_not_found"
    route = client.get("/v1/nothing-here")
    assert route.status_code == 404 and route.json()["error"]["code"] == "request.not_found"


def _sample(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_broken_model_gets_503_and_the_server_stays_healthy(client: TestClient) -> None:
    errors = {"model": "broken", "version": "1", "code": "model.error"}
    before = _sample(client, "plinth_model_errors_total", **errors)
    raised = client.post("/v1/models/broken/predict", json={"records": [{"a": 5000, "b": 1}]})
    assert raised.status_code == 503
    assert raised.json()["error"]["code"] == "model.error"
    nan = client.post("/v1/models/broken/predict", json={"records": [{"a": -5000, "b": 1}]})
    assert nan.status_code == 503
    assert nan.json()["error"]["code"] == "model.bad_output"
    fine = client.post("/v1/models/broken/predict", json={"records": [{"a": 1, "b": 1}]})
    assert fine.status_code == 200
    assert fine.json()["predictions"][0]["prediction"] == 2.0
    assert client.get("/healthz").status_code == 200
    assert _sample(client, "plinth_model_errors_total", **errors) == before + 1


def test_models_listing_and_detail(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"churn", "strict", "broken"}
    assert models["churn"]["serving_version"] == 1
    detail = client.get("/v1/models/churn").json()
    version = detail["versions"][0]
    assert version["contract"]["fields"]
    assert not {"reference_profile", "estimator", "review_context"} & set(version)
    assert "reference_profile" in client.get("/v1/models/churn?profile=true").json()["versions"][0]
    assert client.get("/v1/models/nope").status_code == 404


def test_version_can_be_pinned_and_must_exist(client: TestClient) -> None:
    reply = client.post("/v1/models/churn/predict?version=1", json={"records": [churn_record()]})
    assert reply.status_code == 200
    missing = client.post("/v1/models/churn/predict?version=7", json={"records": [churn_record()]})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "registry.version_not_found"
    bad = client.post("/v1/models/churn/predict?version=x", json={"records": [churn_record()]})
    assert bad.status_code == 422


def test_readiness_reports_loaded_models(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["loaded"] == ["broken:1", "churn:1", "strict:1"]


def test_predict_answers_carry_request_and_worker_headers(client: TestClient) -> None:
    reply = client.post(
        "/v1/models/churn/predict",
        json={"records": [churn_record()]},
        headers={"x-request-id": "req-42"},
    )
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "req-42" and reply.json()["request_id"] == "req-42"
    assert reply.headers["x-plinth-worker"].isdigit()
    assert reply.headers["x-plinth-replica"] == socket.gethostname()  # PLINTH_REPLICA's default
    assert reply.headers["content-type"] == "application/json"
    failed = client.post("/v1/models/churn/predict", content=b"{", headers={"x-request-id": "r7"})
    assert failed.headers["x-request-id"] == "r7"
    assert failed.json()["error"]["request_id"] == "r7"


def test_a_bad_version_parameter_names_the_field(client: TestClient) -> None:
    bad = client.post("/v1/models/churn/predict?version=x", json={"records": [churn_record()]})
    error = bad.json()["error"]
    assert bad.status_code == 422 and error["code"] == "request.invalid"
    assert error["hint"], "the top-level error says how to fix it too"
    (problem,) = error["problems"]
    assert problem["code"] == "request.invalid_parameter" and problem["field"] == "query.version"
    assert problem["hint"]
    monitor = client.get("/v1/models/churn/monitor?version=abc")
    assert monitor.status_code == 422 and monitor.json()["error"]["hint"]
    other = client.post("/v1/models/churn/predict?debug=1", json={"records": [churn_record()]})
    assert other.status_code == 200  # unknown query parameters are ignored


def test_oversized_bodies_are_refused_declared_or_streamed(
    client: TestClient, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    declared = client.post(
        "/v1/models/churn/predict",
        content=b"{}",
        headers={"content-length": str(limit + 1)},
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request.too_large"

    def chunks() -> Any:
        yield b'{"records": ['
        for _ in range(limit // 1000 + 1):
            yield b" " * 1000
        yield b"]}"

    streamed = client.post("/v1/models/churn/predict", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "request.too_large"


# --- missing values: the model's own answer, not a repaired one ---------------------------

Shoppers = tuple[TestClient, dict[str, tuple[Any, pd.DataFrame]]]
NULLABLE = ["region", "segment", "age", "income"]


@pytest.fixture
def shoppers(settings: Settings, tmp_path: Path) -> Iterator[Shoppers]:
    """The issue's user's models, registered the ways a user does, served over HTTP: a
    pipeline with its own imputers (skops and joblib files through ``plinth.register``;
    trained on a table that spells a missing string None, through the Registry), and a
    plain regression that cannot take a NaN."""
    table, none_table = shoppers_table(), shoppers_table(missing=None)
    pipeline, none_pipeline = imputing_pipeline(table), imputing_pipeline(none_table)
    numbers = numbers_only_model(table)
    sio.dump(pipeline, tmp_path / "shoppers.skops")
    joblib.dump(pipeline, tmp_path / "shoppers.joblib")
    common: dict[str, Any] = {"train": table, "target": "bought", "settings": settings}
    plinth.register(tmp_path / "shoppers.skops", name="skops", **common)
    plinth.register(tmp_path / "shoppers.joblib", name="joblib", trust_pickle=True, **common)
    with open_registry(settings) as registry:
        registry.register(none_pipeline, name="none", train=none_table, target="bought")
        registry.register(numbers, name="numbers", train=table, target="bought")
    models = {
        "skops": (pipeline, table),
        "joblib": (pipeline, table),
        "none": (none_pipeline, none_table),
        "numbers": (numbers, table),
    }
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client, models


def _plain(row: pd.Series) -> dict[str, Any]:
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


def _emptied(table: pd.DataFrame, row: int, fields: list[str]) -> pd.DataFrame:
    """One training row as a one-row frame, ``fields`` emptied the way the table spells a
    gap in each column (NaN, or None in an object column built from records)."""
    frame = table[SHOPPERS_FEATURES].loc[[row]].reset_index(drop=True)
    for name in fields:
        marker = table[name][table[name].isna()].iloc[0]
        frame[name] = pd.Series([marker], dtype=frame[name].dtype)
    return frame


def _served(client: TestClient, name: str, record: dict[str, Any]) -> tuple[Any, pd.DataFrame]:
    """The answer, and the frame the model saw (rebuilt from the logged features)."""
    reply = client.post(f"/v1/models/{name}/predict", json={"records": [record]})
    assert reply.status_code == 200, reply.text
    answer = reply.json()["predictions"][0]
    logged = client.get(f"/v1/predictions/{answer['prediction_id']}").json()
    contract = Contract.from_dict(
        client.get(f"/v1/models/{name}").json()["versions"][0]["contract"]
    )
    return answer, contract.frame([logged["features"]])


@pytest.mark.parametrize("name", ["skops", "joblib", "none"])
def test_a_model_with_its_own_imputers_answers_a_null_as_it_would_itself(
    shoppers: Shoppers, name: str
) -> None:
    client, models = shoppers
    model, table = models[name]
    complete = table[SHOPPERS_FEATURES].dropna().index[:3].tolist()
    for row in complete:
        for fields in [[f] for f in NULLABLE] + [NULLABLE]:
            record = {**_plain(table.loc[row, SHOPPERS_FEATURES]), **dict.fromkeys(fields)}
            answer, seen = _served(client, name, record)
            own = _emptied(table, row, fields)
            assert_frame_equal(seen, own)  # dtypes, and NaN versus None, included
            expected = model.predict_proba(own)[0].tolist()
            assert [answer["probabilities"][c] for c in ("no", "yes")] == expected  # exactly
            flagged = sorted((w["field"], w["code"]) for w in answer["warnings"])
            assert flagged == sorted((f, "contract.null_passed") for f in fields)


def test_a_model_that_cannot_take_a_null_gets_the_training_value_and_says_so(
    shoppers: Shoppers,
) -> None:
    client, models = shoppers
    model, table = models["numbers"]
    contract = Contract.from_dict(
        client.get("/v1/models/numbers").json()["versions"][0]["contract"]
    )
    impute = {f.name: f.impute for f in contract.fields}
    row = table[SHOPPERS_NUMBERS].dropna().index[0]
    for field in ("age", "income"):
        record = {**_plain(table.loc[row, SHOPPERS_NUMBERS]), field: None}
        answer, seen = _served(client, "numbers", record)
        assert [(w["field"], w["code"]) for w in answer["warnings"]] == [
            (field, "contract.imputed")
        ]
        own = table[SHOPPERS_NUMBERS].loc[[row]].reset_index(drop=True)
        own[field] = impute[field]
        assert_frame_equal(seen, own)
        expected = model.predict_proba(own)[0].tolist()
        assert [answer["probabilities"][c] for c in ("no", "yes")] == expected


@pytest.mark.parametrize("name", ["skops", "numbers"])
def test_a_null_in_a_required_field_is_refused_whatever_the_model(
    shoppers: Shoppers, name: str
) -> None:
    client, models = shoppers
    _, table = models[name]
    record = {**_plain(table[SHOPPERS_FEATURES].dropna().iloc[0]), "visits": None}
    reply = client.post(f"/v1/models/{name}/predict", json={"records": [record]})
    assert reply.status_code == 422
    assert _codes(reply.json()) == {(0, "visits", "contract.null_value")}


def test_an_artifact_that_fails_its_hash_check_is_a_503_with_its_code(
    client: TestClient, settings: Settings
) -> None:
    """A changed file on the server's disk is the server's fault, not an unexpected error."""
    train = churn_table(seed=7)
    with open_registry(settings) as registry:
        record = registry.register(churn_model(train), name="churn", train=train, target="churn")
        path = registry.artifacts.path(record.sha256)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    reply = client.post(
        f"/v1/models/churn/predict?version={record.version}", json={"records": [churn_record()]}
    )
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "registry.hash_mismatch" and error["hint"]
    path.unlink()
    missing = client.post(
        f"/v1/models/churn/predict?version={record.version}", json={"records": [churn_record()]}
    )
    assert missing.status_code == 503 and missing.json()["error"]["code"] == (
        "registry.artifact_missing"
    )
