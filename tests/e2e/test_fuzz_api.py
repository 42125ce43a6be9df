"""Schemathesis fuzzes every route of a real ``plinth serve`` from its own /openapi.json.

A bounded budget (10 examples per operation through its coverage, fuzzing and stateful
phases, a fixed seed): no answer is a 5xx, every documented response matches its schema,
and every 4xx has the one error shape (``tests/e2e/fuzz_hooks.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import REPO, Env, start_server, stop_server
from tests.support import churn_model, churn_table

pytestmark = pytest.mark.e2e

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


def test_every_route_survives_schemathesis(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'p.db'}")
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(settings.home),
        PLINTH_DATABASE_URL=settings.database_url or "",
        PYTHONPATH=str(REPO),
        PLINTH_ALERTS_ENABLED="false",
    )
    server = start_server(Env(settings.home, env))
    try:
        fuzz_env = {**env, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks"}
        done = subprocess.run(
            [SCHEMATHESIS, "run", f"{server.url}/openapi.json", "--max-examples", "10",
             "--seed", "1", "--workers", "1", "--checks",
             "not_a_server_error,response_schema_conformance,plinth_error_shape"],
            env=fuzz_env, cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        stop_server(server)
    report = done.stdout[-12000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested, report
    assert selected.group(1) == selected.group(2) == tested.group(1), report  # every one ran
