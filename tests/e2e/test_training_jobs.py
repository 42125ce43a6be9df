"""Training jobs across real processes: two ``plinth serve`` on one PostgreSQL run a job
exactly once, and a worker SIGKILLed mid-training leaves the job failed with no version and
no orphan trainer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.runtime import opened
from tests.e2e.conftest import PLINTH, Env, Server
from tests.support import regression_table, ridge_model

pytestmark = pytest.mark.e2e

POLICY = """
[models.reg.training]
entrypoint = "tests.training_support:{fit}"
time_limit = "5m"
[models.reg.training.data]
traffic = false
"""


def _setup(env: Env, tmp_path: Path, fit: str) -> None:
    policy = tmp_path / "plinth.toml"
    policy.write_text(POLICY.format(fit=fit))
    env.env.update(
        PLINTH_POLICY_FILE=str(policy),
        PLINTH_TRAINING_INTERVAL_S="0.5",
        PLINTH_TRAINING_LEASE_S="3",
    )
    train, holdout = regression_table(seed=1), regression_table(seed=2, rows=100)
    settings = Settings(home=env.home, database_url=env.env["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        registry.register(ridge_model(train), name="reg", train=train, holdout=holdout, target="y")


def _wait(what: str, check: object, timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_two_servers_on_postgresql_run_a_job_exactly_once(
    plinth_env: Env, serve: type[Server], tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("two servers share one database on PostgreSQL")
    _setup(plinth_env, tmp_path, "fit_ridge")
    servers = [serve(), serve()]
    queued = httpx.post(f"{servers[0].url}/v1/models/reg/retrain").json()["job"]
    assert httpx.post(f"{servers[1].url}/v1/models/reg/retrain").json()["created"] is False

    def finished() -> dict[str, object] | None:
        job = httpx.get(f"{servers[1].url}/v1/jobs/{queued['id']}").json()
        return job if job["state"] in ("succeeded", "rejected", "failed") else None

    job = _wait("the job", finished)
    assert isinstance(job, dict) and job["state"] == "succeeded", job
    assert len(httpx.get(f"{servers[0].url}/v1/jobs").json()["jobs"]) == 1
    ran = []
    for server in servers:
        text = httpx.get(f"{server.url}/metrics").text
        found = re.search(
            r'plinth_training_jobs_total\{model="reg",outcome="succeeded"\} (\S+)', text
        )
        ran.append(0.0 if found is None else float(found.group(1)))
    assert sorted(ran) == [0.0, 1.0]  # one process ran it, the other never did


def test_a_sigkilled_worker_leaves_the_job_failed_and_no_version(
    plinth_env: Env, tmp_path: Path
) -> None:
    _setup(plinth_env, tmp_path, "fit_hangs")
    pidfile = tmp_path / "trainer.pid"
    plinth_env.env["PLINTH_TEST_TRAINER_PIDFILE"] = str(pidfile)
    worker = subprocess.Popen(
        [PLINTH, "retrain", "reg"],
        env=plinth_env.env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait("the trainer to start", lambda: pidfile.is_file() and pidfile.read_text())
        trainer = int(pidfile.read_text())
        os.kill(worker.pid, signal.SIGKILL)  # the worker, not its trainer
        worker.wait()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    _wait("the orphan trainer to die with its worker", lambda: not _alive(trainer), timeout=10)
    time.sleep(3.5)  # the lease (3 s) runs out
    plinth_env.cli("worker", "--once")  # the next worker to look fails the job
    shown = plinth_env.cli("jobs", "reg").stdout
    assert "failed" in shown
    job_id = re.search(r"(01[0-9A-Z]{24})", shown)
    assert job_id is not None
    detail = plinth_env.cli("job", "show", job_id.group(1)).stdout
    assert "training.lease_lost" in detail
    [model] = json.loads(plinth_env.cli("models", "--json").stdout)
    assert (model["latest_version"], model["versions"]) == (1, 1)  # no version left behind


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


DRY_RUN_POLICY = """
[models.reg.training]
entrypoint = "tests.training_support:fit_ridge"
time_limit = "5m"
[models.reg.training.data]
traffic = false
[models.slow.training]
entrypoint = "tests.training_support:fit_hangs"
time_limit = "6s"
[models.slow.training.data]
traffic = false
[models.broken.training]
entrypoint = "tests.training_support:fit_raises"
[models.broken.training.data]
traffic = false
"""


def test_a_dry_run_over_http_trains_and_gates_and_leaves_nothing_behind(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    policy = tmp_path / "plinth.toml"
    policy.write_text(DRY_RUN_POLICY)
    plinth_env.env.update(PLINTH_POLICY_FILE=str(policy), PLINTH_TRAINING_INTERVAL_S="0.5")
    train, holdout = regression_table(seed=1), regression_table(seed=2, rows=100)
    settings = Settings(home=plinth_env.home, database_url=plinth_env.env["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        for name in ("reg", "slow", "broken"):
            registry.register(ridge_model(train), name=name, train=train, holdout=holdout,
                              target="y")  # fmt: skip
    with opened(settings) as runtime:
        admin = {"authorization": f"Bearer {runtime.tokens.create('admin', 'ops')[1]}"}
        predictor = {"authorization": f"Bearer {runtime.tokens.create('predict', 'app')[1]}"}
    server = serve()
    dry = f"{server.url}/v1/models/reg/retrain?dry_run=true"

    refused = httpx.post(dry, headers=predictor)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "auth.forbidden"
    assert httpx.post(dry).status_code == 401
    reply = httpx.post(dry, headers=admin, timeout=300)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert (report["model"], report["parent_version"], report["would"]) == (
        "reg", 1, "register and ship"
    )  # fmt: skip
    data = report["data"]
    assert data["sources"] == {"reference": 300} and data["rows"] == 300
    assert (data["holdout_rows"], data["holdout_source"]) == (100, "registered holdout")
    assert data["labelled_traffic"] == 0 and data["predictions_in_window"] == 0
    gate = report["gate"]
    assert gate["passed"] and gate["rows"] == 100 and gate["relative"]["test"] == "paired bootstrap"
    assert gate["metrics"]["candidate"]["rmse"] < 0.2
    # Nothing was registered and no job recorded.
    assert httpx.get(f"{server.url}/v1/jobs", headers=admin).json() == {"jobs": []}
    model = httpx.get(f"{server.url}/v1/models/reg", headers=admin).json()
    assert [v["version"] for v in model["versions"]] == [1], model

    failed = httpx.post(
        f"{server.url}/v1/models/broken/retrain?dry_run=true", headers=admin, timeout=300
    )
    assert failed.status_code == 500, failed.text  # the trainer's failure, with its code
    error = failed.json()["error"]
    assert error["code"] == "training.trainer_failed" and "cannot fit" in error["message"]
    bad = httpx.post(f"{server.url}/v1/models/reg/retrain?dry_run=maybe", headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["problems"][0]["field"].endswith(
        "dry_run"
    )
    document = httpx.get(f"{server.url}/openapi.json").json()
    retrain = document["paths"]["/v1/models/{name}/retrain"]["post"]
    [param] = [p for p in retrain["parameters"] if p["name"] == "dry_run"]
    assert param["in"] == "query" and "register" in param["description"]
    assert {"200", "202", "403", "409", "422", "500"} <= set(retrain["responses"])

    # A real job shows its stage over HTTP while it runs, and where it stopped.
    queued = httpx.post(f"{server.url}/v1/models/slow/retrain", headers=admin).json()["job"]
    assert (queued["state"], queued["stage"]) == ("queued", None)
    assert queued["reason"] == "POST /v1/models/slow/retrain"
    url = f"{server.url}/v1/jobs/{queued['id']}"

    def training() -> dict[str, object] | None:
        job = httpx.get(url, headers=admin).json()
        return job if job["stage"] == "training" and job["state"] == "running" else None

    running = _wait("the job to be training", training)
    assert isinstance(running, dict) and list(running["data"]["stages"]) == [  # type: ignore[index]
        "building data", "training"
    ]  # fmt: skip

    def ended() -> dict[str, object] | None:
        job = httpx.get(url, headers=admin).json()
        return job if job["state"] == "failed" else None

    job = _wait("the job to time out", ended)
    assert isinstance(job, dict) and job["stage"] == "training"
    assert job["error"]["code"] == "training.timeout"  # type: ignore[index]
    shown = plinth_env.cli("job", "show", queued["id"]).stdout
    assert "stages: building data" in shown and "training" in shown
