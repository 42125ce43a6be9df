"""The OpenAPI document lists every route, the plain-ASGI predict route with its real
schemas, and real replies match those schemas (successes and every error)."""

from __future__ import annotations

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from plinth.http.schemas import ErrorResponse, PredictResponse
from tests.support import churn_record


def test_every_route_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    routes = {
        (route.path, method.lower())
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes and routes <= documented


def test_the_predict_route_documents_its_body_and_replies(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    predict = document["paths"]["/v1/models/{name}/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/PredictRequest")
    schemas = document["components"]["schemas"]
    assert set(schemas["PredictRequest"]["properties"]) == {"records", "key"}
    replies = predict["responses"]
    assert replies["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse"
    )
    for status in ("400", "401", "404", "413", "422", "429", "503"):
        ref = replies[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse"), status


def test_real_replies_match_the_documented_schemas(client: TestClient) -> None:
    ok = client.post("/v1/models/churn/predict", json={"records": [churn_record()], "key": "k1"})
    assert ok.status_code == 200
    PredictResponse.model_validate(ok.json())
    errors = [
        client.post("/v1/models/churn/predict", json={"records": [churn_record(age="old")]}),
        client.post("/v1/models/churn/predict", content=b"{not json"),
        client.post("/v1/models/churn/predict", json={"rows": []}),
        client.post("/v1/models/nope/predict", json={"records": [churn_record()]}),
        client.post("/v1/models/broken/predict", json={"records": [{"a": 5000.0, "b": 0.0}]}),
        client.post("/v1/models/churn/predict?version=x", json={"records": [churn_record()]}),
        client.get("/v1/predictions/nope"),
        client.get("/v1/nothing-here"),
    ]
    assert {r.status_code for r in errors} == {404, 422, 503}
    for reply in errors:
        parsed = ErrorResponse.model_validate(reply.json())
        assert parsed.error.code and parsed.error.message and parsed.error.request_id
