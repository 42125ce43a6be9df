"""A client that keeps sending bad tokens is refused for a while; other clients are not.

Through the real app: the plain-ASGI predict route and a FastAPI route share one limiter
per worker, keyed by the client's address.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services.auth import Tokens
from tests.support import churn_model, churn_record, churn_table

BODY = {"records": [churn_record()]}


@pytest.fixture
def app_and_token(settings: Settings) -> Iterator[tuple[Settings, str]]:
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
        _, token = Tokens(registry.store).create("admin", "ops")
    yield settings.model_copy(update={"auth_max_failures": 3, "auth_refresh_s": 0.0}), token


def test_a_client_past_its_failures_is_refused_with_retry_after(
    app_and_token: tuple[Settings, str],
) -> None:
    settings, token = app_and_token
    good = {"authorization": f"Bearer {token}"}
    bad = {"authorization": "Bearer plt_guess"}
    app = create_app(settings)
    with (
        TestClient(app, client=("10.0.0.9", 4000), raise_server_exceptions=False) as guesser,
        TestClient(app, client=("10.0.0.7", 4000), raise_server_exceptions=False) as other,
    ):
        assert guesser.post("/v1/models/churn/predict", json=BODY, headers=good).is_success
        codes = [
            guesser.post("/v1/models/churn/predict", json=BODY, headers=bad).status_code,
            guesser.get("/v1/review", headers=bad).status_code,
            guesser.post("/v1/models/churn/predict", json=BODY).status_code,  # no token
        ]
        assert codes == [401, 401, 401]
        for refused in (
            guesser.post("/v1/models/churn/predict", json=BODY, headers=good),
            guesser.get("/v1/review", headers=good),
        ):  # even a valid token waits out the window: guessing costs a window per 3 tries
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "auth.too_many_failures" and error["hint"]
            assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert other.post("/v1/models/churn/predict", json=BODY, headers=good).is_success
        assert other.get("/healthz").status_code == 200
