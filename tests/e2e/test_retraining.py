"""The loop on diamonds, on a real ``plinth serve``: shifted traffic and its labels make the
performance alert fire, a job retrains on the labelled traffic, the candidate beats the
champion on the newest slice, goes out as a canary and is promoted; the CLI tells the story."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from sklearn.model_selection import train_test_split

import plinth
from examples.diamonds import CATEGORICAL, NUMERIC, TARGET, load, pipeline
from examples.diamonds_shift import send, shifted
from plinth.config.settings import Settings
from tests.e2e.conftest import Env, Server

pytestmark = pytest.mark.e2e

POLICY = """
[models.diamonds.monitoring]
min_labels = 300
[models.diamonds.canary]
# Latency is noise on a shared test machine; the loop, not the latency check, is under test.
checks = ["error_rate", "fallback_rate"]
[models.diamonds.training]
entrypoint = "examples.diamonds:retrain"
time_limit = "5m"
canary_share = 50
canary_min_requests = 30
canary_min_duration = "1s"
[models.diamonds.training.data]
traffic_weight = 25
window = "1d"
[models.diamonds.training.triggers]
performance = true
cooldown = "10m"
"""


def _champion(env: Env) -> None:
    frame = load().sample(n=5000, random_state=0)
    train, holdout = train_test_split(frame, test_size=0.2, random_state=0)
    model = pipeline(max_iter=100).fit(train[NUMERIC + CATEGORICAL], train[TARGET])
    settings = Settings(home=env.home, database_url=env.env["PLINTH_DATABASE_URL"])
    plinth.register(model, name="diamonds", train=train, holdout=holdout, target=TARGET,
                    settings=settings)  # fmt: skip


def _wait(what: str, check: object, timeout: float = 240.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_shifted_labels_retrain_ship_a_canary_and_promote_it(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    policy = tmp_path / "plinth.toml"
    policy.write_text(POLICY)
    plinth_env.env.update(
        PLINTH_POLICY_FILE=str(policy),
        PLINTH_ALERT_INTERVAL_S="1",
        PLINTH_CANARY_INTERVAL_S="1",
        PLINTH_PROFILE_INTERVAL_S="1",
        PLINTH_TRAINING_INTERVAL_S="1",
    )
    _champion(plinth_env)
    server = serve()
    began = time.monotonic()
    sent = send(server.url, shifted(400, seed=1))
    assert sent == {"scored": 400, "labelled": 400}
    labelled = time.monotonic()

    def finished_job() -> dict[str, object] | None:
        jobs = httpx.get(f"{server.url}/v1/jobs").json()["jobs"]
        done = [j for j in jobs if j["state"] in ("succeeded", "rejected", "failed")]
        return done[0] if done else None

    job = _wait("a finished training job", finished_job)
    assert isinstance(job, dict)
    shipped = time.monotonic()
    assert job["trigger"] == "performance" and "performance_drop" in str(job["reason"])
    assert (job["state"], job["outcome"], job["version"]) == ("succeeded", "canary", 2), json.dumps(
        job, default=str
    )[:3000]
    gate = job["gate"]
    assert isinstance(gate, dict) and gate["passed"] and gate["relative"]["improved"]
    assert gate["metrics"]["candidate"]["rmse"] < gate["metrics"]["champion"]["rmse"]
    assert gate["registered_holdout"]["rows"] == 1000  # reported beside the verdict
    data = job["data"]
    assert isinstance(data, dict) and data["sources"]["reference"] == 4000
    assert data["holdout_source"] == "traffic" and data["labelled_traffic"] >= 300
    assert data["sources"]["traffic"] + data["holdout_rows"] == data["labelled_traffic"]

    # The canary gets half the traffic; the analysis promotes it once both arms have 30.
    more = shifted(200, seed=2)

    def promoted() -> bool:
        # One record per request: the analysis counts requests per arm.
        send(server.url, more.sample(n=20, random_state=int(time.monotonic())), batch=1)
        live = httpx.get(f"{server.url}/v1/deployments/diamonds").json()
        return bool(live["spec"]["champion"] == 2 and live["spec"]["canary"] is None)

    try:
        _wait("the canary's promotion", promoted)
    except AssertionError:
        judged = plinth_env.cli("canary", "diamonds", "--dry-run", check=False)
        history = plinth_env.cli("history", "diamonds", check=False)
        raise AssertionError(f"{judged.stdout}{judged.stderr}\n{history.stdout}") from None
    done = time.monotonic()

    def outcome() -> bool:
        found = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
        return bool(found["outcome"] == "promoted")

    _wait("the job to record the promotion", outcome, timeout=30)
    history = plinth_env.cli("history", "diamonds").stdout
    assert "auto-promote" in history and "retraining job" in history
    shown = plinth_env.cli("job", "show", str(job["id"])).stdout
    assert "succeeded" in shown and "outcome promoted" in shown and "performance" in shown
    assert "paired bootstrap" in shown
    lineage = json.loads(plinth_env.cli("show", "diamonds:2", "--json").stdout)["lineage"]
    assert lineage["parent_version"] == 1 and lineage["training_job"] == job["id"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'plinth_training_jobs_total{model="diamonds",outcome="succeeded"} 1.0' in metrics
    timings = {
        "send+label 400": round(labelled - began, 1),
        "labels -> canary (alert, job)": round(shipped - labelled, 1),
        "canary -> promoted": round(done - shipped, 1),
        "job train_seconds": gate["train_seconds"],
    }
    print("loop timings (s):", timings)
