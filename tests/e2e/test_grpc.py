"""The Open Inference Protocol over gRPC (``plinth serve --grpc-port``), spoken by Triton's
own gRPC client, unchanged, against a real server; outputs compared with the model's own.
Unary ``ModelInfer`` and the bidirectional ``ModelStreamInfer`` (``start_stream``)."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import plinth
from plinth.config.settings import Settings
from tests.e2e.conftest import Env, Server, start_server, stop_server
from tests.support import (
    churn_model,
    churn_table,
    free_port,
    regression_table,
    ridge_model,
)

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Any, Any]]:
    root = tmp_path_factory.mktemp("grpc")
    home = root / "home"
    database_url = f"sqlite:///{root / 'plinth.db'}"
    settings = Settings(home=home, database_url=database_url)
    churn = churn_model(churn_table(0))
    ridge = ridge_model(regression_table(0))
    plinth.register(churn, name="churn", train=churn_table(0), target="churn", settings=settings)
    plinth.register(ridge, name="ridge", train=regression_table(0), target="y", settings=settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_DATABASE_URL=database_url)
    port = free_port()
    server = start_server(Env(home, env), "--grpc-port", str(port))
    yield server, f"127.0.0.1:{port}", churn, ridge
    stop_server(server)


@pytest.fixture(scope="module")
def client(served: tuple[Server, str, Any, Any]) -> Iterator[Any]:
    triton = grpcclient.InferenceServerClient(served[1])
    yield triton
    triton.close()


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn") and client.is_model_ready("ridge", "1")
    assert "binary_tensor_data" in client.get_server_metadata(as_json=True)["extensions"]
    meta = client.get_model_metadata("churn", as_json=True)
    assert [i["name"] for i in meta["inputs"]] == ["age", "income", "city", "plan", "tenure"]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "prediction_id"]
    with pytest.raises(InferenceServerException, match=r"registry\.model_not_found") as missing:
        client.get_model_metadata("nope")
    assert missing.value.status() == "StatusCode.NOT_FOUND"


def churn_rows(seed: int, rows: int) -> Any:
    table = churn_table(seed, rows=rows).drop(columns=["churn"]).reset_index(drop=True)
    table["tenure"] = table["tenure"].fillna(10.0)
    return table


def churn_inputs(rows: Any) -> list[Any]:
    """One tensor per contract field, as Triton's client builds them."""
    columns = {
        "age": ("INT64", rows["age"].to_numpy(np.int64)),
        "income": ("FP64", rows["income"].to_numpy(np.float64)),  # NaN: a missing number
        "city": ("BYTES", rows["city"].to_numpy(object)),
        "plan": ("BYTES", rows["plan"].to_numpy(object)),
        "tenure": ("FP64", rows["tenure"].to_numpy(np.float64)),
    }
    inputs = []
    for name, (datatype, values) in columns.items():
        tensor = grpcclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def test_infer_matches_the_model_and_is_logged(
    client: Any, served: tuple[Server, str, Any, Any]
) -> None:
    server, _, churn, _ = served
    rows = churn_rows(5, 30)
    result = client.infer("churn", churn_inputs(rows), request_id="grpc-1")
    response = result.get_response()
    assert response.id == "grpc-1" and response.model_version == "1"
    labels = [v.decode() for v in result.as_numpy("predict")]
    assert labels == list(churn.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), churn.predict_proba(rows), atol=1e-12
    )
    ids = [v.decode() for v in result.as_numpy("prediction_id")]
    logged = httpx.get(f"{server.url}/v1/predictions/{ids[0]}").json()
    assert logged["request_id"] == response.parameters["request_id"].string_param
    assert response.parameters["route"].string_param == "champion"


def test_one_matrix_tensor_and_one_named_output(
    client: Any, served: tuple[Server, str, Any, Any]
) -> None:
    ridge = served[3]
    rows = regression_table(4, rows=12).drop(columns=["y"])
    tensor = grpcclient.InferInput("x", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows.to_numpy(np.float32))
    result = client.infer(
        "ridge", [tensor], model_version="1", outputs=[grpcclient.InferRequestedOutput("predict")]
    )
    assert [o.name for o in result.get_response().outputs] == ["predict"]
    expected = ridge.predict(rows.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(result.as_numpy("predict"), expected, rtol=1e-12)


def test_errors_are_grpc_statuses_with_plinth_codes(client: Any) -> None:
    age = grpcclient.InferInput("age", [1], "BYTES")
    age.set_data_from_numpy(np.array(["old"], dtype=object))
    with pytest.raises(InferenceServerException, match=r"\[contract\.wrong_type\]") as bad:
        client.infer("churn", [age])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    colour = grpcclient.InferInput("colour", [1], "BYTES")
    colour.set_data_from_numpy(np.array(["red"], dtype=object))
    with pytest.raises(InferenceServerException, match=r"request\.unknown_input"):
        client.infer("churn", [colour])
    with pytest.raises(InferenceServerException, match=r"registry\.model_not_found"):
        client.infer("nope", [colour])
    with pytest.raises(InferenceServerException, match=r"request\.invalid"):
        client.infer("churn", [colour], model_version="abc")


def test_a_request_past_the_limits_is_resource_exhausted(client: Any) -> None:
    city = grpcclient.InferInput("city", [1], "BYTES")
    city.set_data_from_numpy(np.array(["x" * 1_000_001], dtype=object))
    with pytest.raises(InferenceServerException, match=r"request\.string_too_long") as long:
        client.infer("churn", [city])
    assert long.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "request.over_limit" in str(long.value)
    age = grpcclient.InferInput("age", [1], "FP64")
    age.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException, match=r"request\.string_too_long"):
        client.infer("churn", [age], parameters={"key": "k" * 1_000_001})


def test_failed_tokens_over_grpc_are_counted_and_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("grpc-auth")
    home = root / "home"
    database_url = f"sqlite:///{root / 'plinth.db'}"
    settings = Settings(home=home, database_url=database_url)
    train = churn_table(0)
    plinth.register(churn_model(train), name="churn", train=train, target="churn",
                    settings=settings)  # fmt: skip
    from plinth.api import open_registry
    from plinth.services.auth import Tokens

    with open_registry(settings) as registry:
        _, token = Tokens(registry.store).create("predict", "app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_DATABASE_URL=database_url,
               PLINTH_AUTH_MAX_FAILURES="2", PLINTH_AUTH_REFRESH_S="0")  # fmt: skip
    port = free_port()
    server = start_server(Env(home, env), "--grpc-port", str(port))
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        age = grpcclient.InferInput("age", [1], "FP64")
        age.set_data_from_numpy(np.array([40.0]))
        good = {"authorization": f"Bearer {token}"}
        with pytest.raises(InferenceServerException, match=r"request\.unknown|contract"):
            triton.infer("churn", [age], headers=good)  # past auth: a contract problem
        for guess in ("plt_a", "plt_b"):
            with pytest.raises(InferenceServerException, match=r"auth\.invalid_token") as bad:
                triton.infer("churn", [age], headers={"authorization": f"Bearer {guess}"})
            assert bad.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException, match=r"auth\.too_many_failures") as shut:
            triton.infer("churn", [age], headers=good)
        assert shut.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        # The same worker's limiter: the address is refused over HTTP as well.
        reply = httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": [{}]},
                           headers=good)  # fmt: skip
        assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
    finally:
        triton.close()
        stop_server(server)


REVIEW_BELOW = 0.7


def test_a_stream_answers_every_request_and_outlives_a_bad_one(
    tmp_path: Any, database_url: str
) -> None:
    """``start_stream`` / ``async_stream_infer`` unchanged: several requests on one stream,
    one that breaks the contract; each good one is a first-class prediction (the model's
    answers, logged, gated for review, counted), the bad one is its response's error, and
    the stream goes on answering the requests after it."""
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=database_url)
    train = churn_table(0)
    churn = churn_model(train)
    plinth.register(churn, name="churn", train=train, target="churn", settings=settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_DATABASE_URL=database_url)
    port = free_port()
    server = start_server(
        Env(home, env), "--grpc-port", str(port), "--review-below", str(REVIEW_BELOW)
    )
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    batches = [churn_rows(seed, rows) for seed, rows in ((11, 7), (12, 1), (13, 20), (14, 3))]
    bad = grpcclient.InferInput("age", [1], "BYTES")
    bad.set_data_from_numpy(np.array(["old"], dtype=object))
    try:
        triton.start_stream(callback=lambda result, error: answers.put((result, error)))
        sent = [("s-0", churn_inputs(batches[0])), ("s-1", churn_inputs(batches[1])),
                ("s-bad", [bad]), ("s-2", churn_inputs(batches[2])),
                ("s-3", churn_inputs(batches[3]))]  # fmt: skip
        for request_id, inputs in sent:
            triton.async_stream_infer("churn", inputs, request_id=request_id)
        got = [answers.get(timeout=60) for _ in sent]
        # The stream is still open after the error: one more request on it is answered.
        triton.async_stream_infer("churn", churn_inputs(batches[1]), request_id="s-after")
        after = answers.get(timeout=60)
        triton.stop_stream()
    finally:
        triton.close()
    try:
        assert [error is None for _, error in got] == [True, True, False, True, True]
        error = got[2][1]
        assert "contract.invalid" in str(error) and "[contract.wrong_type]" in str(error)
        assert after[1] is None and after[0].get_response().id == "s-after"
        good = [result for result, _ in got if result is not None]
        assert [r.get_response().id for r in good] == ["s-0", "s-1", "s-2", "s-3"]  # in order
        ids: list[str] = []
        reviews = 0
        for result, rows in zip(good, batches, strict=True):
            labels = [v.decode() for v in result.as_numpy("predict")]
            assert labels == list(churn.predict(rows))
            probabilities = churn.predict_proba(rows)
            np.testing.assert_allclose(result.as_numpy("predict_proba"), probabilities, atol=1e-12)
            parameters = result.get_response().parameters
            assert parameters["route"].string_param == "champion"
            gated = int((probabilities.max(axis=1) < REVIEW_BELOW).sum())
            assert parameters["reviews"].int64_param == gated
            reviews += gated
            first = result.as_numpy("prediction_id")[0].decode()
            logged = httpx.get(f"{server.url}/v1/predictions/{first}").json()
            assert logged["request_id"] == parameters["request_id"].string_param
            assert logged["model"] == "churn" and logged["version"] == 1
            ids.append(parameters["request_id"].string_param)
        assert len(set(ids)) == len(ids)  # each streamed request has its own request id
        assert reviews > 0  # the review gate ran on the stream's answers
        pending = httpx.get(f"{server.url}/v1/review", params={"model": "churn"}).json()
        assert len(pending["items"]) == reviews + int(
            churn.predict_proba(batches[1]).max(axis=1)[0] < REVIEW_BELOW
        )  # the answer after the error too
        metrics = httpx.get(f"{server.url}/metrics").text
        ok = 'plinth_requests_total{model="churn",outcome="ok",route="champion",version="1"}'
        assert f"{ok} 5.0" in metrics
        assert 'outcome="contract.invalid"' in metrics
    finally:
        stop_server(server)
