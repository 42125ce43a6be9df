"""Every /v1 and /v2 reply, success or error, says which request it answers and who answered:
``x-request-id`` (the caller's, or a fresh one that the error body repeats),
``x-plinth-worker``, ``x-plinth-replica``, and ``x-plinth-revision`` when it was routed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services.auth import Tokens
from plinth.services.rollout.deployments import Deployments
from tests.support import BrokenModel, churn_model, churn_record, churn_table, regression_table

REPLICA = "replica-7"
MAX_BODY = 20_000
V2_ROW = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "BYTES" if isinstance(value, str) else "FP64",
         "data": [value]}
        for name, value in churn_record().items()
    ]
}  # fmt: skip
V2_BAD = {"inputs": [{"name": "age", "shape": [1], "datatype": "BYTES", "data": ["old"]}]}
V2_FAILS = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [5000, 1]}]}
ROW = {"records": [churn_record()]}
HUGE = {"records": [churn_record(city="x" * MAX_BODY)]}
FAILS = {"records": [{"a": 5000, "b": 1}]}  # BrokenModel raises: 503
PREDICT, INFER = "/v1/models/churn/predict", "/v2/models/churn/infer"
MANY = "?" + "&".join(f"p{i}=1" for i in range(300))  # past max_query_params

# (what, method, path, body, token, status, routed)
KINDS: list[tuple[str, str, str, Any, str, int, bool]] = [
    ("v1 predict", "POST", PREDICT, ROW, "predict", 200, True),
    ("v1 contract error", "POST", PREDICT, {"records": [{"age": "old"}]}, "predict", 422, True),
    ("v1 malformed body", "POST", PREDICT, b"{", "predict", 422, False),
    ("v1 body too large", "POST", PREDICT, HUGE, "predict", 413, False),
    ("v1 unknown model", "POST", "/v1/models/nope/predict", ROW, "predict", 404, False),
    ("v1 model fails", "POST", "/v1/models/broken/predict", FAILS, "predict", 503, True),
    ("v1 no token", "POST", PREDICT, ROW, "", 401, False),
    ("v1 wrong role", "GET", "/v1/deployments/churn", None, "predict", 403, False),
    ("v1 bad token", "GET", "/v1/deployments/churn", None, "plt_wrong", 401, False),
    ("v1 list models", "GET", "/v1/models", None, "admin", 200, False),
    ("v1 unknown model page", "GET", "/v1/models/nope", None, "admin", 404, False),
    ("v1 unknown path", "GET", "/v1/nowhere", None, "admin", 404, False),
    ("v1 bad query", "GET", "/v1/models/churn?profile=maybe", None, "admin", 422, False),
    ("v1 query too large", "GET", "/v1/models" + MANY, None, "admin", 400, False),
    ("v1 feedback malformed", "POST", "/v1/feedback", b"[", "admin", 422, False),
    ("v1 deployment", "GET", "/v1/deployments/churn", None, "admin", 200, False),
    ("v2 infer", "POST", INFER, V2_ROW, "predict", 200, True),
    ("v2 contract error", "POST", INFER, V2_BAD, "predict", 422, True),
    ("v2 model fails", "POST", "/v2/models/broken/infer", V2_FAILS, "predict", 503, True),
    ("v2 malformed body", "POST", INFER, b"{", "predict", 422, False),
    ("v2 bad version", "POST", "/v2/models/churn/versions/x/infer", V2_ROW, "predict", 422, False),
    ("v2 no token", "POST", INFER, V2_ROW, "", 401, False),
    ("v2 query too large", "POST", INFER + MANY, V2_ROW, "predict", 400, False),
    ("v2 metadata", "GET", "/v2/models/churn", None, "", 200, False),
    ("v2 unknown model", "GET", "/v2/models/nope", None, "", 404, False),
    ("v2 server", "GET", "/v2", None, "", 200, False),
    ("v2 live", "GET", "/v2/health/live", None, "", 200, False),
    ("v2 ready", "GET", "/v2/models/churn/ready", None, "", 200, False),
]


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        replica=REPLICA,
        max_body_bytes=MAX_BODY,
        max_query_params=100,
    )
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
        registry.register(
            BrokenModel(),
            name="broken",
            train=regression_table(),
            target="y",
            task="regression",
            trust_pickle=True,
        )
        for name in ("churn", "broken"):  # a deployment revision routes them
            Deployments(registry.store).deploy(name, 1, reason="test")
        tokens = Tokens(registry.store)
        secrets = {"": "", "plt_wrong": "plt_wrong"}
        for role in ("predict", "admin"):
            secrets[role] = tokens.create(role, role)[1]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, secrets


@pytest.mark.parametrize("sends_id", [True, False], ids=["caller-id", "fresh-id"])
def test_every_reply_names_its_request_and_who_answered(
    served: tuple[TestClient, dict[str, str]], sends_id: bool
) -> None:
    client, secrets = served
    seen_ids: set[str] = set()
    for n, (what, method, path, body, token, status, routed) in enumerate(KINDS):
        headers = {"authorization": f"Bearer {secrets[token]}"} if token else {}
        if sends_id:
            headers["x-request-id"] = f"caller-{n}"
        if isinstance(body, bytes):
            headers["content-type"] = "application/json"
            reply = client.request(method, path, content=body, headers=headers)
        else:
            reply = client.request(method, path, json=body, headers=headers)
        assert reply.status_code == status, (what, reply.text[:300])
        request_id = reply.headers.get("x-request-id")
        assert request_id == f"caller-{n}" if sends_id else request_id, what
        assert request_id not in seen_ids, what  # a fresh id for each request
        seen_ids.add(str(request_id))
        assert reply.headers.get("x-plinth-worker") == str(os.getpid()), what
        assert reply.headers.get("x-plinth-replica") == REPLICA, what
        assert ("x-plinth-revision" in reply.headers) == routed, what
        if status >= 400:  # the error body names the same request
            found = reply.json()
            error = found if path.startswith("/v2") else found["error"]
            assert error["request_id"] == request_id, what
