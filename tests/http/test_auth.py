"""Tokens at the edge: stored only as hashes, and a client that keeps sending bad ones is
slowed down with 429 and Retry-After (on the plain-ASGI predict route and FastAPI's)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services import audit
from plinth.services.auth import Tokens
from plinth.store import Store
from tests.support import churn_model, churn_record, churn_table


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        auth_refresh_s=0,
        auth_max_failures=3,
        auth_failure_window_s=60,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_tokens_are_stored_as_sha256_only(settings: Settings) -> None:
    with Store(settings.resolved_database_url()) as store:
        row, token = Tokens(store).create("admin", "ops")
        engine = sa.create_engine(settings.resolved_database_url(), poolclass=sa.NullPool)
        with engine.connect() as conn:
            stored = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_tokens")]
        engine.dispose()
    assert token.startswith("plt_") and len(token) > 30
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert any(row.token_hash in map(str, r) for r in stored)
    assert not any(token in str(value) for r in stored for value in r)


def test_a_client_with_too_many_bad_tokens_gets_429_with_retry_after(
    client: TestClient, settings: Settings
) -> None:
    with Store(settings.resolved_database_url()) as store:
        _, token = Tokens(store).create("admin", "ops")
    body = {"records": [churn_record()]}
    good = {"authorization": f"Bearer {token}"}
    assert client.post("/v1/models/churn/predict", json=body, headers=good).status_code == 200
    codes = [
        client.post(
            "/v1/models/churn/predict", json=body, headers={"authorization": f"Bearer bad{i}"}
        ).status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 401]
    for reply in (
        client.post("/v1/models/churn/predict", json=body, headers={"authorization": "Bearer x"}),
        # Even the right token waits: the limit is on the client, not on the guess.
        client.post("/v1/models/churn/predict", json=body, headers=good),
        client.get("/v1/deployments/churn", headers=good),  # FastAPI's routes too
    ):
        assert reply.status_code == 429, reply.text
        assert reply.json()["error"]["code"] == "auth.too_many_failures"
        assert 1 <= int(reply.headers["retry-after"]) <= 60


def test_grpc_clients_are_counted_by_address_without_the_port() -> None:
    from plinth.http.grpc_service import peer_host

    assert peer_host("ipv4:127.0.0.1:50412") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:50412") == "[::1]"
    assert peer_host("unix:/tmp/plinth.sock") == "/tmp/plinth.sock"
    assert peer_host(None) == peer_host("") == "unknown"


def test_forgetting_a_subject_over_http_needs_an_admin_token(
    client: TestClient, settings: Settings
) -> None:
    with Store(settings.resolved_database_url()) as store:
        _, predictor = Tokens(store).create("predict", "app")
        _, admin = Tokens(store).create("admin", "ops")
    body = {"records": [churn_record()], "key": "subject-1"}
    as_app = {"authorization": f"Bearer {predictor}"}
    assert client.post("/v1/models/churn/predict", json=body, headers=as_app).status_code == 200
    refused = client.post("/v1/forget", json={"key": "subject-1"}, headers=as_app)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "auth.forbidden"
    done = client.post(
        "/v1/forget", json={"key": "subject-1"}, headers={"authorization": f"Bearer {admin}"}
    )
    assert done.status_code == 200
    assert done.json() == {"predictions": 1, "labels": 0, "label_history": 0, "review_items": 0}
    with Store(settings.resolved_database_url()) as store:
        (event,) = audit.read(store, action="subject.forget")
    assert event.who == "api:ops"  # the admin token's name
