"""docs/runbook.md, run: each failure made on a real server, then the doc's own commands.

Every ``<!-- runbook: ID -->`` block in the doc is parsed here; its ``$ `` lines run in
bash (``pipefail``) with the variables the doc tells the reader to set, and must exit 0
(a ``grep`` that finds nothing, a ``curl -f`` that gets a 503, a CLI error: all fail).
The test then checks the output shows what the doc says it shows. A block added to the
doc without a test here fails ``test_every_runbook_block_is_run``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.rollout.deployments import Deployments
from tests.e2e.conftest import REPO, Env, Server, start_server, stop_server
from tests.rollout_support import ConstantModel, SlowModel, register
from tests.support import BrokenModel, churn_model, churn_record, churn_table

pytestmark = pytest.mark.e2e

RUNBOOK = REPO / "docs" / "runbook.md"
BLOCK = re.compile(r"<!-- runbook: (?P<id>[\w.-]+) -->\n```console\n(?P<body>.*?)```", re.S)
BIN = str(Path(sys.executable).parent)


def blocks() -> dict[str, list[str]]:
    """Each marked block's commands, by id."""
    found = {}
    for match in BLOCK.finditer(RUNBOOK.read_text()):
        body = match.group("body").splitlines()
        found[match.group("id")] = [line[2:] for line in body if line.startswith("$ ")]
    return found


def test_every_runbook_block_is_run() -> None:
    sections = ("model-errors", "store", "bad-data", "overload", "bad-deploy")
    tested = {f"{s}.{step}" for s in sections for step in ("diagnose", "confirm")}
    tested |= {"model-errors.fix", "bad-deploy.fix"}
    assert set(blocks()) == tested
    assert all(blocks().values()), "a marked block has no $ command"


@dataclass
class Running:
    server: Server
    env: Env
    db: Path

    def run(self, block: str, **variables: str) -> str:
        """Run one block's commands as the reader would; their joined output."""
        env = {**self.env.env, "PATH": f"{BIN}:{os.environ['PATH']}"}
        env.update(PLINTH_URL=self.server.url, **variables)
        out = []
        for command in blocks()[block]:
            done = subprocess.run(
                ["bash", "-c", f"set -o pipefail; {command}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{block}: `{command}` exited {done.returncode}:\n" + (
                done.stdout + done.stderr
            )
            out.append(done.stdout)
        return "\n".join(out)

    def post(self, model: str, record: dict[str, object]) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/v1/models/{model}/predict", json={"records": [record]}, timeout=30
        )


def has_line(output: str, start: str, *labels: str) -> bool:
    """A line of ``output`` starts with ``start`` and carries every one of ``labels``."""
    return any(
        line.startswith(start) and all(label in line for label in labels)
        for line in output.splitlines()
    )


def body(record: dict[str, object]) -> str:
    return json.dumps({"records": [record]})


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("runbook")
    db = root / "plinth.db"
    settings = Settings(home=root / "home", database_url=f"sqlite:///{db}")
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
        for name in ("prices", "scores"):
            register(registry, name, ConstantModel(2.0))
            register(registry, name, BrokenModel())
        register(registry, "slow", SlowModel(0.2))
        deployments = Deployments(registry.store)
        for name in ("prices", "scores"):
            deployments.deploy(name, 1, reason="first")
        deployments.deploy("slow", 1, deadline_ms=300)
    policy = root / "plinth.toml"
    policy.write_text("[models.slow]\nmax_batch_size = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(settings.home),
        PLINTH_DATABASE_URL=settings.database_url or "",
        PLINTH_POLICY_FILE=str(policy),
        PLINTH_SQLITE_BUSY_TIMEOUT_S="0.5",
        PLINTH_STORE_PROBE_S="0.2",
        PYTHONPATH=str(REPO),
        COLUMNS="200",
    )
    plinth_env = Env(settings.home, env)
    server = start_server(plinth_env)
    try:
        yield Running(server, plinth_env, db)
    finally:
        stop_server(server)


BAD = {"a": 5000.0, "b": 0.0}  # BrokenModel raises on a > 1000


def test_model_errors(running: Running) -> None:
    running.env.cli("deploy", "prices", "2", "--reason", "v2")
    assert running.post("prices", BAD).json()["error"]["code"] == "model.error"
    found = running.run("model-errors.diagnose", MODEL="prices")
    assert has_line(found, "plinth_model_errors_total", 'model="prices"', 'version="2"',
                    'code="model.error"')  # fmt: skip
    running.run("model-errors.fix", MODEL="prices", VERSION="2", PREVIOUS="1")
    confirmed = running.run("model-errors.confirm", MODEL="prices", RECORD=body(BAD))
    reply = json.loads(confirmed)
    assert reply["route"] == "fallback" and reply["version"] == 1


def test_store_unavailable(running: Running) -> None:
    locker = sqlite3.connect(running.db, isolation_level=None, timeout=30)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another process holds SQLite's write lock
        refused = running.post("churn", churn_record())
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store.unavailable"
        found = running.run("store.diagnose", MODEL="churn")
        assert '"status":"unavailable"' in found and "store.unavailable" in found
        assert "plinth_store_up 0.0" in found
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    confirmed = running.run("store.confirm", MODEL="churn")
    assert '"status":"ready"' in confirmed and "plinth_store_up 1.0" in confirmed


def test_bad_upstream_data(running: Running) -> None:
    refused = running.post("churn", churn_record(age="forty"))
    assert refused.status_code == 422
    code = refused.json()["error"]["problems"][0]["code"]
    found = running.run("bad-data.diagnose", MODEL="churn")
    assert has_line(found, "plinth_validation_problems", 'model="churn"', 'field="age"',
                    f'code="{code}"')  # fmt: skip
    assert '"age"' in found  # the contract, as plinth contract show prints it
    confirmed = running.run("bad-data.confirm", MODEL="churn", RECORD=body(churn_record()))
    assert json.loads(confirmed)["route"] == "champion"


def test_overload(running: Running) -> None:
    slow = {"a": 900.0, "b": 0.0}  # SlowModel sleeps 0.2 s on a > 500
    assert running.post("slow", slow).status_code == 200  # the server learns its cost
    with ThreadPoolExecutor(8) as pool:
        codes = [r.status_code for r in pool.map(lambda _: running.post("slow", slow), range(8))]
    assert 503 in codes
    found = running.run("overload.diagnose", MODEL="slow")
    shed = re.search(r'^plinth_requests_shed_total\{model="slow"\} (\S+)$', found, re.M)
    assert shed is not None and float(shed.group(1)) >= codes.count(503) - codes.count(200)
    assert has_line(found, "plinth_model_duration_seconds_sum", 'model="slow"')
    confirmed = running.run("overload.confirm", MODEL="slow", RECORD=body({"a": 1.0, "b": 0.0}))
    assert json.loads(confirmed)["route"] == "champion"


def test_bad_deployment(running: Running) -> None:
    running.env.cli("deploy", "scores", "2", "--reason", "the new one")
    record = body(BAD)
    found = running.run("bad-deploy.diagnose", MODEL="scores", RECORD=record)
    assert "the new one" in found  # the history names the deploy and its reason
    assert "x-plinth-revision: 2" in found.lower() and "503" in found
    running.run("bad-deploy.fix", MODEL="scores")
    confirmed = running.run("bad-deploy.confirm", MODEL="scores", RECORD=record)
    assert "errors since the last deploy" in confirmed
    assert '"version":1' in confirmed and '"route":"champion"' in confirmed
