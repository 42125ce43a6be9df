"""Shape limits on every route (PLINTH_MAX_JSON_DEPTH and its siblings): a body nested too
deep, a string or an array too long, a record with too many fields, or a query string too
large is refused at once with its code, the place and the setting, in the route's own error
shape; never a 500, never a RecursionError."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from tests.support import churn_model, churn_record, churn_table

PREDICT = "/v1/models/churn/predict"
INFER = "/v2/models/churn/infer"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module: the limits are checked before the store is touched."""
    root = tmp_path_factory.mktemp("limits")
    settings = Settings(home=root / "home", database_url=f"sqlite:///{root / 'plinth.db'}")
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _error(path: str, reply: Any) -> dict[str, Any]:
    body = reply.json()
    error: dict[str, Any] = body if path.startswith("/v2") else body["error"]
    assert error["hint"] and error["request_id"]
    return error


# (path, body with {} standing for the oversized value)
ROUTES = [
    (PREDICT, b'{"records": [{"age": {}, "income": 1, "city": "a", "plan": "pro", "tenure": 1}]}'),
    (PREDICT, b'{"records": [{"age": 1}], "key": {}}'),
    (INFER, b'{"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": {}}]}'),
    ("/v1/deployments/churn/promote", b'{"reason": {}}'),
    ("/v1/deployments/churn", b'{"version": 1, "reason": {}}'),
    ("/v1/forget", b'{"key": {}}'),
    ("/v1/feedback", b'{"items": [{"prediction_id": "p", "label": {}}]}'),
]


@pytest.mark.parametrize(("path", "template"), ROUTES)
@pytest.mark.parametrize("depth", [40, 900, 5_000])
def test_deep_json_is_refused_on_every_route(
    client: TestClient, path: str, template: bytes, depth: int
) -> None:
    reply = client.post(path, content=template.replace(b"{}", _nested(depth)))
    assert reply.status_code == 413, reply.text
    error = _error(path, reply)
    assert error["code"] == "request.over_limit"
    assert [p["code"] for p in error["problems"]] == ["request.too_deep"]
    assert "PLINTH_MAX_JSON_DEPTH" in error["problems"][0]["hint"]


@pytest.mark.parametrize(("path", "template"), ROUTES)
def test_a_string_past_the_limit_is_refused_on_every_route(
    client: TestClient, path: str, template: bytes
) -> None:
    reply = client.post(path, content=template.replace(b"{}", b'"' + b"x" * 1_000_001 + b'"'))
    assert reply.status_code == 413, reply.text
    error = _error(path, reply)
    if path == "/v1/forget":  # its own byte limit (64 KiB) comes first
        assert error["code"] == "request.too_large"
    else:
        assert [p["code"] for p in error["problems"]] == ["request.string_too_long"]


def test_a_record_with_too_many_fields_and_a_long_array(client: TestClient) -> None:
    wide = churn_record(**{f"extra_{i}": i for i in range(10_001)})
    reply = client.post(PREDICT, json={"records": [wide]})
    assert reply.status_code == 413
    problems = reply.json()["error"]["problems"]
    assert [(p["code"], p["field"]) for p in problems] == [("request.too_many_keys", "records[0]")]
    data = [1.0] * 1_000_001
    tensor = {"name": "age", "shape": [len(data)], "datatype": "FP64", "data": data}
    reply = client.post(INFER, json={"inputs": [tensor]})
    assert reply.status_code == 413
    assert [p["code"] for p in reply.json()["problems"]] == ["request.array_too_long"]


def test_a_long_bytes_tensor_is_refused_in_binary_form_too(client: TestClient) -> None:
    text = b"y" * 1_000_001
    header = b'{"inputs": [{"name": "city", "shape": [1], "datatype": "BYTES",' \
        b' "parameters": {"binary_data_size": %d}}]}' % (len(text) + 4)  # fmt: skip
    reply = client.post(
        INFER,
        content=header + len(text).to_bytes(4, "little") + text,
        headers={"inference-header-content-length": str(len(header))},
    )
    assert reply.status_code == 413, reply.text
    assert [p["code"] for p in reply.json()["problems"]] == ["request.string_too_long"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", PREDICT), ("POST", INFER), ("GET", "/v1/models"), ("GET", "/v2"), ("GET", "/ui")],
)
def test_a_query_string_past_its_limits_is_refused_before_routing(
    client: TestClient, method: str, path: str
) -> None:
    for query in ("&".join(f"p{i}=1" for i in range(65)), "q=" + "z" * 8_200):
        reply = client.request(method, f"{path}?{query}", json={"records": [churn_record()]})
        assert reply.status_code == 400, reply.text
        assert _error(path, reply)["code"] == "request.query_too_large"
    assert client.get("/v1/models?x=1&y=2").status_code == 200


def test_ordinary_requests_are_untouched(client: TestClient) -> None:
    records = [churn_record(age=20 + i % 50) for i in range(2_000)]
    assert client.post(PREDICT, json={"records": records, "key": "k-1"}).status_code == 200
    no_canary = client.post("/v1/deployments/churn/promote")  # an empty body is still fine
    assert no_canary.status_code == 409 and no_canary.json()["error"]["code"] == "deploy.no_canary"
    reply = client.post("/v1/deployments/churn/rollback", json={"to": "three"})
    assert reply.status_code == 422
    assert reply.json()["error"]["problems"][0]["field"] == "body.to"
