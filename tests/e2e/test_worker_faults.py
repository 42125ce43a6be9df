"""One of three ``plinth serve --workers 3`` workers SIGKILLed under load.

The other two keep answering, uvicorn's supervisor starts a replacement that serves too,
no caller is ever answered with a 5xx (a request in flight on the killed worker loses its
connection, and was never acknowledged), and every acknowledged prediction is logged.
``tests/e2e/test_crash.py`` kills the whole server; ``test_replicas.py`` a whole replica.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from plinth.store import Store
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.faults_support import Traffic, logged, prepare, wait_for

pytestmark = pytest.mark.e2e


def test_one_of_three_workers_killed_under_load(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plinth.db'}"
    server = start_server(prepare(tmp_path / "home", url), "--workers", "3", timeout=240)
    try:
        with Traffic(server.url, new_connections=True) as traffic:
            wait_for(lambda: len(traffic.workers) == 3, "all three workers", timeout=120)
            first = set(traffic.workers)
            victim = int(sorted(first)[0])
            os.kill(victim, signal.SIGKILL)
            served = traffic.ok()
            wait_for(lambda: traffic.ok() >= served + 50, "the other workers answering")
            # The replacement imports and loads everything afresh: slow on a busy machine.
            wait_for(lambda: traffic.workers - first, "the replacement worker", timeout=240)
    finally:
        stop_server(server)
    errors = {k: n for k, n in traffic.outcomes.items() if k != "200"}
    assert not [k for k in errors if not k.startswith("client ")], errors  # never a 5xx
    with Store(url, migrate=False) as store:
        missing = [i for i in traffic.acknowledged if not logged(store, i)]
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
