"""A client that keeps sending bad tokens is refused for a while; other clients are not.

Through the real app: the plain-ASGI predict and v2 infer routes, the FastAPI routes and the
console's sign-in share one limiter per worker, keyed by the client's address (gRPC's is
tested against a real server in tests/e2e/test_grpc.py).
"""

from __future__ import annotations

import re
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


V2_BODY = {
    "inputs": [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
         "data": [v]}
        for k, v in churn_record().items()
    ]
}  # fmt: skip


def test_v2_failures_are_counted_and_refused(app_and_token: tuple[Settings, str]) -> None:
    settings, token = app_and_token
    good = {"authorization": f"Bearer {token}"}
    app = create_app(settings)
    with TestClient(app, client=("10.0.1.1", 4000), raise_server_exceptions=False) as guesser:
        assert guesser.post("/v2/models/churn/infer", json=V2_BODY, headers=good).is_success
        for _ in range(3):
            bad = guesser.post("/v2/models/churn/infer", json=V2_BODY, headers={
                "authorization": "Bearer plt_guess"})  # fmt: skip
            assert bad.status_code == 401 and bad.json()["code"] == "auth.invalid_token"
        refused = guesser.post("/v2/models/churn/infer", json=V2_BODY, headers=good)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "auth.too_many_failures"  # the protocol's shape
        assert int(refused.headers["retry-after"]) >= 1
        # The same address is refused on /v1 too: one limiter per worker, whatever the route.
        assert guesser.post("/v1/models/churn/predict", json=BODY, headers=good).status_code == 429


def test_console_sign_in_failures_are_counted_and_refused(
    app_and_token: tuple[Settings, str],
) -> None:
    settings, token = app_and_token
    app = create_app(settings)
    with (
        TestClient(app, client=("10.0.2.2", 4000), raise_server_exceptions=False) as guesser,
        TestClient(app, client=("10.0.2.3", 4000), raise_server_exceptions=False) as other,
    ):
        page = guesser.get("/ui/login")
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert found, page.text
        form = {"csrf_token": found.group(1), "next": "/ui"}
        for guess in ("plt_a", "plt_b", "plt_c"):
            wrong = guesser.post("/ui/login", data={**form, "token": guess}, follow_redirects=False)
            assert wrong.status_code == 401
        refused = guesser.post("/ui/login", data={**form, "token": token}, follow_redirects=False)
        assert refused.status_code == 429 and "auth.too_many_failures" in refused.text
        assert "text/html" in refused.headers["content-type"]
        assert int(refused.headers["retry-after"]) >= 1
        # The API is closed to that address too; another address signs in.
        assert (
            guesser.get("/v1/review", headers={"authorization": f"Bearer {token}"}).status_code
            == 429
        )
        page = other.get("/ui/login")
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert found
        signed = other.post(
            "/ui/login",
            data={"csrf_token": found.group(1), "next": "/ui", "token": token},
            follow_redirects=False,
        )
        assert signed.status_code in (302, 303), signed.text
