"""The review queue and roles through the real app (gate on via settings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services.auth import Tokens
from plinth.store import Store
from tests.support import churn_model, churn_record, churn_table


@pytest.fixture
def gated(settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    gated_settings = settings.model_copy(update={"review_below": 1.0, "auth_refresh_s": 0.0})
    with TestClient(create_app(gated_settings), raise_server_exceptions=False) as client:
        yield client, gated_settings


def test_gate_queue_claim_resolve(gated: tuple[TestClient, Settings]) -> None:
    client, _ = gated
    reply = client.post("/v1/models/churn/predict", json={"records": [churn_record()]})
    assert reply.status_code == 200
    (answer,) = reply.json()["predictions"]
    review_id = answer["review"]["id"]
    assert answer["review"]["status"] == "pending"
    listed = client.get("/v1/review", params={"model": "churn", "status": "pending"}).json()
    assert [i["id"] for i in listed["items"]] == [review_id]
    shown = client.get(f"/v1/review/{review_id}").json()
    assert shown["input"] == churn_record() and shown["prediction_id"] == answer["prediction_id"]
    claim = client.post(f"/v1/review/{review_id}/claim", json={"reviewer": "ann"})
    assert claim.status_code == 200 and claim.json()["claimed_by"] == "ann"
    other = client.post(f"/v1/review/{review_id}/claim", json={"reviewer": "bob"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "review.claimed"
    done = client.post(
        f"/v1/review/{review_id}/resolve",
        json={"action": "correct", "label": "no", "note": "called them", "reviewer": "ann"},
    )
    assert done.status_code == 200 and done.json()["label"] == "no"
    again = client.post(f"/v1/review/{review_id}/resolve", json={"action": "approve"})
    assert again.status_code == 409
    metrics = client.get("/v1/review/metrics").json()["models"]
    assert metrics[0]["open"] == 0 and metrics[0]["resolved_counted"] == 1
    perf = client.get("/v1/models/churn/performance", params={"windows": 1}).json()
    (entry,) = perf["windows"][-1]["versions"]
    assert entry["sources"] == {"reviewer": 1}
    text = client.get("/metrics").text
    assert "plinth_review_queue_depth" in text
    bad = client.post(f"/v1/review/{review_id}/resolve", json={"action": "approve", "x": 1})
    assert bad.status_code == 422
    assert client.get("/v1/review/nope").status_code == 404


def test_roles_switch_on_with_the_first_token(gated: tuple[TestClient, Settings]) -> None:
    client, settings = gated
    body = {"records": [churn_record()]}
    assert client.post("/v1/models/churn/predict", json=body).status_code == 200
    store = Store(settings.resolved_database_url())
    try:
        tokens = Tokens(store)
        _, predictor = tokens.create("predict", "app")
        _, reviewer = tokens.create("reviewer", "ann")
        _, admin = tokens.create("admin", "ops")
    finally:
        store.close()

    def auth(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    missing = client.post("/v1/models/churn/predict", json=body)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "auth.missing_token"
    wrong = client.post("/v1/models/churn/predict", json=body, headers=auth("plt_nope"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "auth.invalid_token"
    assert client.post("/v1/models/churn/predict", json=body, headers=auth(predictor)).is_success
    assert client.post("/v1/models/churn/predict", json=body, headers=auth(admin)).is_success
    forbidden = client.post("/v1/models/churn/predict", json=body, headers=auth(reviewer))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "auth.forbidden"
    assert client.get("/v1/review", headers=auth(predictor)).status_code == 403
    items = client.get("/v1/review", headers=auth(reviewer)).json()["items"]
    claim = client.post(f"/v1/review/{items[0]['id']}/claim", headers=auth(reviewer))
    assert claim.json()["claimed_by"] == "ann"  # the token's name
    assert client.get("/v1/deployments/churn", headers=auth(reviewer)).status_code == 403
    assert client.get("/healthz").status_code == 200
