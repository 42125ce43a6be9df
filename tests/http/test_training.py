"""Retraining over HTTP: queue (admin only), one active job per model, list and read jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.services.auth import Tokens
from plinth.store import Store
from tests.support import regression_table, ridge_model


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Settings]]:
    policy = tmp_path / "plinth.toml"
    policy.write_text('[models.reg.training]\nentrypoint = "tests.training_support:fit_ridge"\n')
    # Jobs are queued here and not run: the background loop is off in this app.
    settings = Settings(
        home=tmp_path / "home", database_url=database_url, policy_file=policy, training_jobs=False
    )
    train = regression_table()
    with open_registry(settings) as registry:
        registry.register(ridge_model(train), name="reg", train=train, target="y")
        registry.register(
            ridge_model(train), name="other", train=train, target="y", tags={"x": "1"}
        )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client, settings


def test_retrain_queues_one_job_and_the_jobs_can_be_read(
    client: tuple[TestClient, Settings],
) -> None:
    http, _ = client
    first = http.post("/v1/models/reg/retrain")
    assert first.status_code == 202, first.text
    job = first.json()["job"]
    assert first.json()["created"] and (job["model"], job["state"]) == ("reg", "queued")
    assert job["trigger"] == "manual" and job["parent_version"] == 1
    again = http.post("/v1/models/reg/retrain")
    assert again.status_code == 200 and not again.json()["created"]
    assert again.json()["job"]["id"] == job["id"]
    listed = http.get("/v1/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert http.get("/v1/jobs", params={"model": "other"}).json() == {"jobs": []}
    assert http.get(f"/v1/jobs/{job['id']}").json()["created_at"] == job["created_at"]
    missing = http.get("/v1/jobs/nope")
    assert (
        missing.status_code == 404 and missing.json()["error"]["code"] == "training.job_not_found"
    )
    unconfigured = http.post("/v1/models/other/retrain")
    assert unconfigured.status_code == 409
    assert unconfigured.json()["error"]["code"] == "training.not_configured"
    unknown = http.post("/v1/models/ghost/retrain")
    assert unknown.status_code == 404


def test_only_an_admin_may_retrain(client: tuple[TestClient, Settings]) -> None:
    http, settings = client
    store = Store(settings.resolved_database_url())
    try:
        _, predictor = Tokens(store).create("predict", "app")
        _, admin = Tokens(store).create("admin", "ops")
    finally:
        store.close()
    refused = http.post("/v1/models/reg/retrain", headers={"authorization": f"Bearer {predictor}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "auth.forbidden"
    allowed = http.post("/v1/models/reg/retrain", headers={"authorization": f"Bearer {admin}"})
    assert allowed.status_code == 202
