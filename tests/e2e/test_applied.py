"""Changes reach every worker and replica, and say so: contract edits, deploys nobody can load.

Real ``plinth serve`` processes (two replicas, one with two workers) on one store; the real
CLI edits and deploys and waits for the workers' reports (issue 11, items 3 and 9).
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.monitoring.alerts import AlertEvaluator
from tests.e2e.conftest import Env, Server, start_server, stop_server
from tests.rollout_support import ConstantModel, register

pytestmark = pytest.mark.e2e


def _settings(env: Env) -> Settings:
    return Settings(home=env.home, database_url=env.env["PLINTH_DATABASE_URL"])


def _replicas(env: Env) -> list[Server]:
    first = start_server(replace(env, env={**env.env, "PLINTH_REPLICA": "one"}), "--workers", "2")
    try:
        second = start_server(replace(env, env={**env.env, "PLINTH_REPLICA": "two"}))
    except BaseException:
        stop_server(first)
        raise
    return [first, second]


def _workers(server: Server, name: str) -> list[dict[str, object]]:
    reply = httpx.get(f"{server.url}/v1/deployments/{name}", timeout=10)
    assert reply.status_code == 200, reply.text
    workers: list[dict[str, object]] = reply.json()["workers"]
    return workers


def test_a_contract_edit_reaches_every_worker_and_replica_before_the_command_returns(
    plinth_env: Env, tmp_path: Path
) -> None:
    with open_registry(_settings(plinth_env)) as registry:
        register(registry, "m", ConstantModel(1.0))
    servers = _replicas(plinth_env)
    try:
        record = {"a": 0.5, "b": None}
        for server in servers:  # b was never null in training: a null is refused
            refused = httpx.post(
                f"{server.url}/v1/models/m/predict", json={"records": [record]}, timeout=10
            )
            assert refused.status_code == 422, refused.text
        document = json.loads(plinth_env.cli("contract", "show", "m").stdout)
        for field in document["fields"]:
            if field["name"] == "b":
                field["nullable"] = True
        edited = tmp_path / "contract.json"
        edited.write_text(json.dumps(document))

        done = plinth_env.cli("contract", "set", "m", str(edited), "--reason", "b optional")

        assert "contract revision 1" in done.stdout
        assert "applied by 3 workers on 2 replicas" in done.stdout, done.stdout
        # Already applied everywhere when the command returned: no request sees the old one.
        for server in servers:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                for _ in range(20):  # the kernel spreads them over the replica's workers
                    reply = client.post("/v1/models/m/predict", json={"records": [record]})
                    assert reply.status_code == 200, reply.text
        workers = _workers(servers[0], "m")
        assert len(workers) == 3
        assert {w["replica"] for w in workers} == {"one", "two"}
        assert all(w["contracts"] == {"1": 1} for w in workers), workers
        # The revision is recorded with the contract and its history.
        with open_registry(_settings(plinth_env)) as registry:
            metadata = registry.store.get_version("m", 1).metadata
        assert metadata["contract_revision"] == 1
        assert metadata["contract_history"][-1]["revision"] == 1
        assert metadata["contract_history"][-1]["reason"] == "b optional"
    finally:
        for server in servers:
            stop_server(server)


def _unimportable_model(tmp_path: Path) -> object:
    """A Python-object model whose module only this test process can import (not the
    servers): the case the issue saw."""
    folder = tmp_path / "private_models"
    folder.mkdir()
    (folder / "homemade_model.py").write_text(
        "import numpy as np\n\n"
        "class Homemade:\n"
        "    def predict(self, frame):\n"
        "        return np.full(len(frame), 7.0)\n"
    )
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("homemade_model")
        return module.Homemade()
    finally:
        sys.path.remove(str(folder))


def test_a_deploy_no_worker_can_load_fails_with_the_load_error_and_alerts(
    plinth_env: Env, tmp_path: Path
) -> None:
    with open_registry(_settings(plinth_env)) as registry:
        register(registry, "m", ConstantModel(1.0))
        register(registry, "m", _unimportable_model(tmp_path))
    plinth_env.cli("deploy", "m", "1", "--reason", "start")
    servers = _replicas(plinth_env)
    try:
        failed = plinth_env.cli("deploy", "m", "2", check=False)

        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "deployed m revision 2" in failed.stdout  # recorded ...
        assert "deploy.not_applied" in failed.stderr  # ... but not applied, and why:
        assert "registry.load_failed" in failed.stderr
        assert "Check the file was written by" in failed.stderr  # the load error's hint
        for server in servers:  # every worker still serves the revision before
            reply = httpx.post(
                f"{server.url}/v1/models/m/predict",
                json={"records": [{"a": 1.0, "b": 2.0}]},
                timeout=10,
            )
            assert reply.status_code == 200 and reply.json()["version"] == 1, reply.text
        workers = _workers(servers[0], "m")
        assert len(workers) == 3 and all(w["state"] == "failed" for w in workers), workers
        assert all(w["revision"] == 2 for w in workers)

        # The HTTP route says the same, with the load error's code in each problem.
        http = httpx.post(f"{servers[1].url}/v1/deployments/m", json={"version": 2}, timeout=30)
        assert http.status_code == 503, http.text
        error = http.json()["error"]
        assert error["code"] == "deploy.not_applied" and error["hint"]
        assert {p["code"] for p in error["problems"]} == {"registry.load_failed"}
        assert len(error["problems"]) == 3

        # An alert fires while the live revision cannot be applied ...
        with open_registry(_settings(plinth_env)) as registry:
            fired = AlertEvaluator(registry.store, sinks=[]).evaluate()
        assert [e.alert.rule for e in fired if e.event == "firing"] == ["deployment_not_applied"]

        # ... and a rollback the workers can apply succeeds, and says where.
        back = plinth_env.cli("rollback", "m", "--to", "1")
        assert "applied by 3 workers on 2 replicas" in back.stdout
        assert all(w["state"] == "applied" for w in _workers(servers[0], "m"))
    finally:
        for server in servers:
            stop_server(server)
