"""The server's own log never holds an API token or a caller's raw input.

A real ``plinth serve`` with auth on gets good, refused (422), failing (model.error) and
unauthorised requests carrying sentinel values; afterwards its whole log (uvicorn's and
Plinth's) is searched for the token and the sentinels. The prediction log keeps inputs on
purpose; that is the store, not the server log.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.auth import Tokens
from tests.e2e.conftest import REPO, Env, start_server, stop_server
from tests.rollout_support import register
from tests.support import BrokenModel, churn_model, churn_record, churn_table

pytestmark = pytest.mark.e2e

SENTINEL_TEXT = "sentinel-city-7f3a9"
SENTINEL_NUMBER = 4242.424242


def test_no_token_or_raw_input_reaches_the_server_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{tmp_path / 'plinth.db'}")
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
        register(registry, "prices", BrokenModel())
        _, token = Tokens(registry.store).create("admin", "ops")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_DATABASE_URL=settings.database_url or "",
        PYTHONPATH=str(REPO),
        PLINTH_AUTH_REFRESH_S="0",
    )
    server = start_server(Env(home, env), "--access-log")
    try:
        auth = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, timeout=30, headers=auth) as http:
            url = "/v1/models/churn/predict"
            assert http.post(url, json={"records": [churn_record()]}).status_code == 200
            bad = churn_record(city=SENTINEL_TEXT, age=SENTINEL_NUMBER)
            assert http.post(url, json={"records": [bad]}).status_code == 422
            assert http.post(url, json={"records": [{"x": SENTINEL_TEXT}]}).status_code == 422
            failing = {"records": [{"a": SENTINEL_NUMBER, "b": 0.0}]}  # BrokenModel raises
            assert http.post("/v1/models/prices/predict", json=failing).status_code == 503
            assert http.post(url, content=b'{"records": [' + SENTINEL_TEXT.encode()).is_error
            wrong = {"authorization": f"Bearer {token}x"}
            assert http.post(url, json={"records": [bad]}, headers=wrong).status_code == 401
    finally:
        stop_server(server)
    text = Path(server.log.name).read_text(errors="replace")
    assert "POST /v1/models/churn/predict" in text  # the access log was on
    for secret in (token, SENTINEL_TEXT, str(SENTINEL_NUMBER)):
        assert secret not in text, f"{secret!r} is in the server log"
