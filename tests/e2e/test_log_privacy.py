"""The server's own log never holds an API token or a caller's raw input.

A real ``plinth serve --log-level debug`` with auth on gets good, refused (422, past the
limits), failing (model.error) and unauthorised requests carrying sentinel values on /v1,
/v2, gRPC, the console's sign-in and ``POST /v1/forget``; afterwards its whole log
(uvicorn's and Plinth's, every level) is searched for the tokens and the sentinels. The
prediction log keeps inputs on purpose; that is the store, not the server log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.auth import Tokens
from tests.e2e.conftest import REPO, Env, start_server, stop_server
from tests.rollout_support import register
from tests.support import BrokenModel, churn_model, churn_record, churn_table, free_port

pytestmark = pytest.mark.e2e

SENTINEL_TEXT = "sentinel-city-7f3a9"
SENTINEL_NUMBER = 4242.424242
SENTINEL_KEY = "subject-key-5c1d"


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
    grpc_port = free_port()
    server = start_server(
        Env(home, env), "--access-log", "--log-level", "debug", "--grpc-port", str(grpc_port)
    )
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
            keyed = {"records": [churn_record()], "key": SENTINEL_KEY}
            assert http.post(url, json=keyed).status_code == 200
            # Past the limits: a deep body, a long string, a large query string.
            deep = b'{"records": [{"a": ' + b"[" * 40 + SENTINEL_TEXT.encode() + b"]" * 40 + b"}]}"
            assert http.post(url, content=deep).status_code in (413, 422)
            long = churn_record(city=SENTINEL_TEXT * 60_000)
            assert http.post(url, json={"records": [long]}).status_code == 413
            # (the access log records paths with their query: no input ever travels there)
            query = "&".join(f"p{i}=1" for i in range(70))
            assert http.post(f"{url}?{query}", json=keyed).status_code == 400
            # /v2: good, refused, unauthorised.
            infer = "/v2/models/churn/infer"
            tensors = {"inputs": [_tensor(k, v) for k, v in churn_record().items()],
                       "parameters": {"key": SENTINEL_KEY}}  # fmt: skip
            assert http.post(infer, json=tensors).status_code == 200
            odd = {"inputs": [_tensor("age", SENTINEL_TEXT)]}
            assert http.post(infer, json=odd).status_code == 422
            assert http.post(infer, json=tensors, headers=wrong).status_code == 401
            # Admin actions: forget by key, a contract edit (audited, not logged verbatim).
            assert http.post("/v1/forget", json={"key": SENTINEL_KEY}).status_code == 200
            # The console's sign-in with a wrong token.
            login = http.get("/ui/login")
            csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', login.text)
            assert csrf, login.text
            form = {"csrf_token": csrf.group(1), "token": f"{token}-console", "next": "/ui"}
            assert http.post("/ui/login", data=form).status_code == 401
        _grpc_calls(grpc_port, token)
    finally:
        stop_server(server)
    text = Path(server.log.name).read_text(errors="replace")
    assert "POST /v1/models/churn/predict" in text  # the access log was on
    # Plinth's own lines share uvicorn's handler (a level prefix): they were captured too.
    assert "WARNING:  forgot a subject: 2 predictions" in text
    for secret in (token, SENTINEL_TEXT, str(SENTINEL_NUMBER), SENTINEL_KEY):
        assert secret not in text, f"{secret!r} is in the server log"


def _tensor(name: str, value: object) -> dict[str, object]:
    datatype = "BYTES" if isinstance(value, str) else "FP64"
    return {"name": name, "shape": [1], "datatype": datatype, "data": [value]}


def _grpc_calls(port: int, token: str) -> None:
    """A good, a refused and an unauthorised gRPC inference carrying the sentinels."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        inputs = []
        for name, value in churn_record(city=SENTINEL_TEXT).items():
            tensor = grpcclient.InferInput(name, [1], "BYTES" if isinstance(value, str) else "FP64")
            tensor.set_data_from_numpy(np.array([value], dtype=object if isinstance(value, str)
                                                else np.float64))  # fmt: skip
            inputs.append(tensor)
        good = {"authorization": f"Bearer {token}"}
        client.infer("churn", inputs, headers=good, parameters={"key": SENTINEL_KEY})
        age = grpcclient.InferInput("age", [1], "BYTES")
        age.set_data_from_numpy(np.array([SENTINEL_TEXT], dtype=object))
        with pytest.raises(InferenceServerException):
            client.infer("churn", [age], headers=good)
        with pytest.raises(InferenceServerException):
            client.infer("churn", inputs, headers={"authorization": f"Bearer {token}-grpc"})
    finally:
        client.close()
