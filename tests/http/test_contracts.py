"""``PUT /v1/models/{name}/contract``: ``plinth contract set`` over HTTP, for an admin token;
the edit and every deployment change made over HTTP are in the audit trail under the
token's name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services import audit
from plinth.services.auth import Tokens
from plinth.store import Store
from tests.support import churn_model, churn_record, churn_table


@pytest.fixture
def admin(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    train = churn_table()
    with open_registry(settings) as registry:
        for _ in range(2):
            registry.register(churn_model(train), name="churn", train=train, target="churn")
        _, token = Tokens(registry.store).create("admin", "ops")
        _, predictor = Tokens(registry.store).create("predict", "app")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, {"authorization": f"Bearer {token}"}, {"authorization": f"Bearer {predictor}"}


def test_a_contract_edit_over_http_is_served_and_audited(
    admin: tuple[TestClient, dict[str, str], dict[str, str]], settings: Settings
) -> None:
    client, auth, predict_only = admin
    contract = client.get("/v1/models/churn", headers=auth).json()["versions"][-1]["contract"]
    age = next(f for f in contract["fields"] if f["name"] == "age")
    age["maximum"] = 50
    body = {"contract": contract, "version": 1, "reason": "no one over 50"}
    refused = client.put("/v1/models/churn/contract", json=body, headers=predict_only)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "auth.forbidden"
    reply = client.put("/v1/models/churn/contract", json=body, headers=auth)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["version"], reply.json()["contract_revision"]) == (1, 1)
    # The edit serves at once on this worker: version 1 now flags an age of 60.
    sixty = {"records": [churn_record(age=60)]}
    old = client.post("/v1/models/churn/predict?version=1", json=sixty, headers=auth)
    assert [w["field"] for w in old.json()["predictions"][0]["warnings"]] == ["age"], old.text

    bad = client.put(
        "/v1/models/churn/contract",
        json={"contract": [], "version": "one", "colour": 1},
        headers=auth,
    )
    assert bad.status_code == 422
    assert sorted(p["field"] for p in bad.json()["error"]["problems"]) == [
        "colour", "contract", "version",
    ]  # fmt: skip

    assert client.post("/v1/deployments/churn", json={"version": 2}, headers=auth).is_success
    with Store(settings.resolved_database_url(), migrate=False) as store:
        trail = [(e.action, e.target, e.who) for e in reversed(audit.read(store))]
    assert trail[-2:] == [
        ("contract.edit", "churn:1", "api:ops"),
        ("deployment.deploy", "churn", "api:ops"),
    ]
