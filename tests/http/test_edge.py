"""plinth.http.edge: a bug of ours answers the same 500 on every path, the plain-ASGI predict
route, the v2 route and the FastAPI routes alike (one body, the caller's request id, logged)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from plinth.config.settings import Settings
from plinth.http.app import create_app

V1 = {"records": [{}]}
V2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/models/churn/predict", V1),  # the fast route (plinth.http.predict)
        ("POST", "/v2/models/churn/infer", V2),  # the Open Inference Protocol route
        ("GET", "/v1/models", None),  # a FastAPI route
    ],
)
def test_an_unexpected_error_is_the_same_500_on_every_route(
    settings: Settings, caplog: pytest.LogCaptureFixture, method: str, path: str, body: object
) -> None:
    # Without its lifespan the app has no Runtime: reaching for it is a bug of ours.
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="plinth.http"):
        answer = client.request(method, path, json=body, headers={"x-request-id": "req-42"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-42"
    body = answer.json()
    # v2 speaks the protocol's {"error": "code: message"} with Plinth's fields beside it.
    error = body if path.startswith("/v2/") else body["error"]
    assert error["code"] == "internal.error" and error["request_id"] == "req-42"
    assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)
