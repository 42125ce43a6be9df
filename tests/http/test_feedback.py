"""POST /v1/feedback and GET /v1/models/{name}/performance through the real app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support import churn_record


def _predict(client: TestClient, n: int = 3, key: str | None = None) -> list[str]:
    body: dict = {"records": [churn_record(age=30 + i) for i in range(n)]}
    if key is not None:
        body["key"] = key
    reply = client.post("/v1/models/churn/predict", json=body)
    assert reply.status_code == 200, reply.text
    return [p["prediction_id"] for p in reply.json()["predictions"]]


def test_mixed_items_store_the_valid_ones(client: TestClient) -> None:
    ids = _predict(client)
    reply = client.post(
        "/v1/feedback",
        json={
            "items": [
                {"prediction_id": ids[0], "label": "yes"},
                {"prediction_id": "missing", "label": "yes"},
                {"prediction_id": ids[1], "label": "perhaps"},
                {"prediction_id": ids[0], "label": "no", "time": "2026-03-01T00:00:00Z"},
            ]
        },
    )
    assert reply.status_code == 200
    body = reply.json()
    assert (body["stored"], body["replaced"], body["failed"]) == (1, 1, 2)
    assert [i["status"] for i in body["items"]] == [201, 404, 422, 200]
    assert body["items"][1]["error"]["code"] == "feedback.unknown_prediction"
    assert body["items"][2]["error"]["code"] == "feedback.invalid_label"


def test_all_failing_is_422_and_single_item_bodies_work(client: TestClient) -> None:
    reply = client.post("/v1/feedback", json=[{"prediction_id": "x", "label": "no"}])
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "feedback.all_failed"
    (pid,) = _predict(client, 1, key="order-7")
    single = client.post("/v1/feedback", json={"key": "order-7", "model": "churn", "label": "no"})
    assert single.status_code == 200 and single.json()["items"][0]["prediction_ids"] == [pid]
    bad = client.post("/v1/feedback", content=b"{nope")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "request.malformed_json"
    empty = client.post("/v1/feedback", json={"items": []})
    assert empty.status_code == 422


def test_performance_route_reports_labels_and_coverage(client: TestClient) -> None:
    ids = _predict(client, 5)
    client.post("/v1/feedback", json=[{"prediction_id": i, "label": "no"} for i in ids[:3]])
    reply = client.get("/v1/models/churn/performance", params={"window": "1d", "windows": 2})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    (entry,) = body["windows"][-1]["versions"]
    assert (entry["predictions"], entry["labelled"], entry["coverage"]) == (5, 3, 0.6)
    assert 0.0 <= entry["realised"]["accuracy"] <= 1.0
    assert "accuracy" in entry["estimated"]
    assert client.get("/v1/models/nope/performance").status_code == 404
    assert client.get("/v1/models/churn/performance?window=soon").status_code == 422
