"""A store that is away for a while (SQLite's write lock held by another process) answers
503 ``store.unavailable`` with ``Retry-After`` on every path: the plain-ASGI predict route,
the v2 infer route and a FastAPI route (``POST /v1/forget``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from tests.support import churn_model, churn_record, churn_table

V2 = {
    "inputs": [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
         "data": [v]}
        for k, v in churn_record().items()
    ]
}  # fmt: skip


@pytest.fixture
def locked_client(tmp_path: Path) -> Iterator[TestClient]:
    db = tmp_path / "plinth.db"
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{db}",
        sqlite_busy_timeout_s=0.2,
        store_probe_s=60.0,
    )
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post(
            "/v1/models/churn/predict", json={"records": [churn_record()]}
        ).is_success
        locker = sqlite3.connect(db, isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")  # WAL: readers go on, no writer can commit
        try:
            yield client
        finally:
            locker.execute("ROLLBACK")
            locker.close()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/churn/predict", {"records": [churn_record()]}),
        ("/v2/models/churn/infer", V2),
        ("/v1/forget", {"key": "someone"}),
    ],
)
def test_store_unavailable_says_when_to_retry(
    locked_client: TestClient, path: str, body: dict[str, object]
) -> None:
    reply = locked_client.post(path, json=body)
    assert reply.status_code == 503, reply.text
    error = reply.json() if path.startswith("/v2/") else reply.json()["error"]
    assert error["code"] == "store.unavailable" and error["hint"]
    assert int(reply.headers["retry-after"]) >= 1
