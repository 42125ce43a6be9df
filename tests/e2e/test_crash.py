"""SIGKILL in the middle of traffic loses no prediction whose reply was received."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.store import Store
from tests.e2e.conftest import Env, Server
from tests.support import churn_model, churn_record, churn_table

pytestmark = pytest.mark.e2e


def test_sigkill_under_load_loses_no_acknowledged_prediction(
    plinth_env: Env, serve: type[Server], database_url: str, tmp_path: Path
) -> None:
    settings = Settings(home=plinth_env.home, database_url=database_url)
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    server = serve()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            n = 0
            while not stop.is_set():
                n += 1
                records = [churn_record(age=20 + (seed * 7 + n) % 50)] * (1 + n % 3)
                try:
                    reply = http.post("/v1/models/churn/predict", json={"records": records})
                except httpx.HTTPError:
                    return
                if reply.status_code == 200:
                    ids = [p["prediction_id"] for p in reply.json()["predictions"]]
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) >= 300
    store = Store(settings.resolved_database_url())
    try:
        missing = [i for i in acknowledged if not _exists(store, i)]
    finally:
        store.close()
    assert missing == []


def _exists(store: Store, prediction_id: str) -> bool:
    try:
        store.get_prediction(prediction_id)
    except Exception:
        return False
    return True
