"""The Open Inference Protocol v2 over a real ``plinth serve``, spoken by Triton's own client.

``tritonclient[http]`` is used unchanged (binary tensors by default, JSON on request), and
the KServe v2 example bodies are sent as the KServe docs print them. Served outputs are
compared with the model's own ``predict`` / ``predict_proba``; every v2 answer is checked
to be a first-class prediction: logged, counted, gated for review.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.config.settings import Settings
from tests.e2e.conftest import Env, Server, start_server, stop_server
from tests.support import churn_model, churn_table, regression_table, ridge_model

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e

REVIEW_BELOW = 0.7


class Models:
    churn: Any
    ridge: Any
    iris: Any
    iris_frame: pd.DataFrame


@pytest.fixture(scope="module")
def models() -> Models:
    found = Models()
    found.churn = churn_model(churn_table(0))
    found.ridge = ridge_model(regression_table(0))
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    found.iris = LogisticRegression(max_iter=500).fit(
        frame.drop(columns=["target"]), frame["target"]
    )
    found.iris_frame = frame
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[Server]:
    """One server for the module: churn (labels "no"/"yes"), ridge (regression), iris (0/1/2)."""
    root = tmp_path_factory.mktemp("oip")
    home = root / "home"
    database_url = f"sqlite:///{root / 'plinth.db'}"
    settings = Settings(home=home, database_url=database_url)
    plinth.register(
        models.churn, name="churn", train=churn_table(0), target="churn", settings=settings
    )
    plinth.register(
        models.ridge, name="ridge", train=regression_table(0), target="y", settings=settings
    )
    plinth.register(
        models.iris, name="iris", train=models.iris_frame, target="target", settings=settings
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_DATABASE_URL=database_url)
    started = start_server(Env(home, env), "--review-below", str(REVIEW_BELOW))
    yield started
    stop_server(started)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    triton = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    yield triton
    triton.close()


def churn_rows() -> pd.DataFrame:
    rows = churn_table(7, rows=40).drop(columns=["churn"]).reset_index(drop=True)
    rows.loc[3, "income"] = np.nan  # a missing number travels as NaN in a binary tensor
    return rows


def churn_inputs(rows: pd.DataFrame, binary: bool) -> list[Any]:
    """One named tensor per contract field, each in the datatype a Triton user would pick."""
    columns = {
        "age": ("INT64", rows["age"].to_numpy(np.int64)),
        "income": ("FP64", rows["income"].to_numpy(np.float64)),
        "city": ("BYTES", rows["city"].to_numpy(object)),
        "plan": ("BYTES", rows["plan"].to_numpy(object)),
        "tenure": ("FP32", rows["tenure"].fillna(12.0).to_numpy(np.float32)),
    }
    inputs = []
    for name, (datatype, values) in columns.items():
        tensor = tritonclient_http.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def expected_churn(models: Models, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    frame = rows.copy()
    frame["tenure"] = frame["tenure"].fillna(12.0).astype(np.float32).astype(np.float64)
    return models.churn.predict(frame), models.churn.predict_proba(frame)


def test_health_and_metadata(client: Any, server: Server) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn") and client.is_model_ready("churn", "1")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("churn")
    assert meta["versions"] == ["1"] and meta["platform"] == "plinth_sklearn"
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("age", "INT64"),
        ("income", "FP64"),
        ("city", "BYTES"),
        ("plan", "BYTES"),
        ("tenure", "FP64"),
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predict", "BYTES", [-1]),
        ("predict_proba", "FP64", [-1, 2]),
        ("prediction_id", "BYTES", [-1]),
    ]
    assert client.get_model_metadata("iris", "1")["outputs"][0]["datatype"] == "INT64"
    with pytest.raises(InferenceServerException, match=r"registry\.model_not_found") as missing:
        client.get_model_metadata("nope")
    assert missing.value.status() == "404"
    assert not client.is_model_ready("nope")
    body = httpx.get(f"{server.url}/v2/models/nope").json()
    assert body["code"] == "registry.model_not_found" and isinstance(body["error"], str)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_client_matches_the_model(
    client: Any, server: Server, models: Models, binary: bool
) -> None:
    rows = churn_rows()
    if not binary:  # JSON has no NaN: the JSON form sends numbers only
        rows["income"] = rows["income"].fillna(0.0)
    outputs = [
        tritonclient_http.InferRequestedOutput(name, binary_data=binary)
        for name in ("predict", "predict_proba", "prediction_id")
    ]
    result = client.infer("churn", churn_inputs(rows, binary), outputs=outputs, request_id="req-1")
    response = result.get_response()
    assert response["model_name"] == "churn" and response["model_version"] == "1"
    assert response["id"] == "req-1"
    has_binary = ["binary_data_size" in o.get("parameters", {}) for o in response["outputs"]]
    assert has_binary == [binary] * 3

    labels, probabilities = expected_churn(models, rows)
    served = result.as_numpy("predict")
    assert [v.decode() if isinstance(v, bytes) else v for v in served] == list(labels)
    np.testing.assert_allclose(result.as_numpy("predict_proba"), probabilities, atol=1e-12)

    # A first-class prediction: logged with the request's id and the repaired features,
    # counted, and gated for review like /v1.
    ids = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction_id")]
    assert len(set(ids)) == len(rows)
    logged = httpx.get(f"{server.url}/v1/predictions/{ids[3]}").json()
    assert logged["request_id"] == response["parameters"]["request_id"]
    assert logged["model"] == "churn" and logged["version"] == 1
    if binary:
        codes = {w["code"] for w in logged["warnings"]}
        assert codes & {"contract.imputed", "contract.null_passed"}
    gated = int((probabilities.max(axis=1) < REVIEW_BELOW).sum())
    assert response["parameters"]["reviews"] == gated
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'plinth_requests_total{model="churn",outcome="ok",route="champion",version="1"}' in (
        metrics
    )


def test_default_outputs_are_binary_when_none_are_named(client: Any, models: Models) -> None:
    rows = churn_rows().head(5)
    result = client.infer("churn", churn_inputs(rows, binary=True))
    assert [o["name"] for o in result.get_response()["outputs"]] == [
        "predict",
        "predict_proba",
        "prediction_id",
    ]
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), expected_churn(models, rows)[1], atol=1e-12
    )


def test_one_matrix_tensor_in_contract_order(client: Any, models: Models) -> None:
    rows = regression_table(3, rows=25).drop(columns=["y"])
    for binary in (True, False):
        tensor = tritonclient_http.InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows.to_numpy(np.float32), binary_data=binary)
        result = client.infer("ridge", [tensor], model_version="1")
        expected = models.ridge.predict(rows.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(result.as_numpy("predict"), expected, rtol=1e-12)
        assert result.as_numpy("predict_proba") is None


def test_kserve_example_bodies(server: Server, models: Models) -> None:
    # KServe's v2 scikit-learn iris example, as its docs print it (iris-input-v2.json).
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]],
            }
        ]
    }
    reply = httpx.post(f"{server.url}/v2/models/iris/infer", json=body)
    assert reply.status_code == 200, reply.text
    assert "traceparent" not in reply.headers  # tracing is off by default
    answer = reply.json()
    # JSON numbers are read as the numbers written (6.8, not float32's 6.8000002).
    frame = pd.DataFrame(
        np.asarray(body["inputs"][0]["data"], dtype=np.float64),
        columns=models.iris_frame.columns[:4],
    )
    predict = next(o for o in answer["outputs"] if o["name"] == "predict")
    assert predict == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [2],
        "data": models.iris.predict(frame).tolist(),
    }
    proba = next(o for o in answer["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.reshape(proba["data"], (2, 3)), models.iris.predict_proba(frame), atol=1e-12
    )
    # The same with a version in the path, an id, and one output asked for by name.
    body["id"] = "823248cc-d770-4a51-9606-16803395569c"
    body["outputs"] = [{"name": "predict"}]
    pinned = httpx.post(f"{server.url}/v2/models/iris/versions/1/infer", json=body).json()
    assert pinned["id"] == body["id"] and [o["name"] for o in pinned["outputs"]] == ["predict"]


def test_errors_keep_the_protocol_shape_and_plinth_codes(client: Any, server: Server) -> None:
    rows = churn_rows().head(2)
    inputs = churn_inputs(rows, binary=False)
    bad_age = tritonclient_http.InferInput("age", [2], "BYTES")
    bad_age.set_data_from_numpy(np.array(["x", "40"], dtype=object), binary_data=True)
    with pytest.raises(InferenceServerException, match=r"contract\.invalid") as broken:
        client.infer("churn", [bad_age, *inputs[1:]])
    assert broken.value.status() == "422"
    assert "[contract.wrong_type] field 'age'" in broken.value.message()

    url = f"{server.url}/v2/models/churn/infer"
    wrong = httpx.post(
        url,
        json={
            "inputs": [
                {"name": "age", "datatype": "FP128", "shape": [1], "data": [1]},
                {"name": "income", "datatype": "FP64", "shape": [2], "data": [1.0]},
                {"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["red"]},
            ]
        },
    )
    assert wrong.status_code == 422
    body = wrong.json()
    assert isinstance(body["error"], str) and body["code"] == "request.invalid_body"
    assert {p["code"] for p in body["problems"]} == {
        "request.tensor_datatype",
        "request.tensor_data",
    }
    assert body["request_id"] == wrong.headers["x-request-id"]

    unknown = httpx.post(
        url, json={"inputs": [{"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["r"]}]}
    )
    assert unknown.status_code == 422
    assert [p["code"] for p in unknown.json()["problems"]] == ["request.unknown_input"]

    no_output = httpx.post(
        url,
        json={
            "inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": [40]}],
            "outputs": [{"name": "logits"}],
        },
    )
    assert no_output.status_code == 422, no_output.text

    head = (
        b'{"inputs": [{"name": "age", "datatype": "INT64", "shape": [2], '
        b'"parameters": {"binary_data_size": 16}}]}'
    )
    short = httpx.post(  # 16 bytes announced, 8 sent
        url,
        content=head + b"\x01" * 8,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert short.status_code == 422 and short.json()["code"] == "request.invalid_body"
    assert "binary_data_size 16" in short.json()["error"]

    version = httpx.post(f"{server.url}/v2/models/churn/versions/abc/infer", json={})
    assert version.status_code == 422 and version.json()["code"] == "request.invalid"
    one = {"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": [40]}]}
    missing = httpx.post(f"{server.url}/v2/models/nope/infer", json=one)
    assert missing.status_code == 404 and missing.json()["code"] == "registry.model_not_found"


def test_python_clients_sync_and_async_against_the_server(server: Server) -> None:
    records = churn_rows().head(3).fillna({"income": 50_000.0}).to_dict("records")
    with plinth.Client(server.url) as client:
        blocking = client.predict("churn", records, key="order-7")

    async def call() -> Any:
        async with plinth.AsyncClient(server.url) as client:
            return await asyncio.gather(*(client.predict("churn", [r]) for r in records))

    concurrent = asyncio.run(call())
    assert [a.prediction for a in blocking.predictions] == [
        reply.predictions[0].prediction for reply in concurrent
    ]
    assert all(reply.model == "churn" and reply.version == 1 for reply in concurrent)
    assert [a.probabilities for a in blocking.predictions] == [
        reply.predictions[0].probabilities for reply in concurrent
    ]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client: Any, server: Server, models: Models, algorithm: str) -> None:
    rows = churn_rows().head(6)
    result = client.infer(
        "churn", churn_inputs(rows, binary=True), request_compression_algorithm=algorithm
    )
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), expected_churn(models, rows)[1], atol=1e-12
    )


def test_compressed_bodies_are_checked(server: Server) -> None:
    url = f"{server.url}/v2/models/churn/infer"
    unknown = httpx.post(url, content=b"{}", headers={"Content-Encoding": "br"})
    assert unknown.status_code == 422 and "Content-Encoding 'br'" in unknown.json()["error"]
    broken = httpx.post(url, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 422 and broken.json()["code"] == "request.invalid_body"
    # A small body that inflates past the size limit is refused, not inflated.
    limit = Settings().max_body_bytes
    bomb = gzip.compress(b" " * (limit + 1024))
    assert len(bomb) < limit // 100
    refused = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 413 and refused.json()["code"] == "request.too_large"
