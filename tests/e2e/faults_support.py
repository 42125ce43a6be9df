"""Helpers for the fault tests: steady traffic that remembers what it was told."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.store import Store
from tests.e2e.conftest import REPO, Env
from tests.support import churn_model, churn_record, churn_table


@dataclass
class Traffic:
    """Four callers in a loop; what they were told, and every acknowledged prediction id."""

    url: str
    acknowledged: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    hints: dict[str, str] = field(default_factory=dict)
    retry_after: dict[str, set[str | None]] = field(default_factory=dict)  # per error code
    workers: set[str] = field(default_factory=set)  # x-plinth-worker of every reply
    new_connections: bool = False  # a connection per request, to reach every worker
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        for seed in range(4):
            thread = threading.Thread(target=self._call, args=(seed,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _call(self, seed: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = {"records": [churn_record(age=20 + (seed * 7 + n) % 50)]}
                try:
                    headers = {"connection": "close"} if self.new_connections else {}
                    reply = http.post("/v1/models/churn/predict", json=body, headers=headers)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.outcomes[f"client {type(exc).__name__}"] += 1
                    continue
                with self._lock:
                    self.workers.add(reply.headers.get("x-plinth-worker", ""))
                    if reply.status_code == 200:
                        self.outcomes["200"] += 1
                        self.acknowledged.extend(
                            p["prediction_id"] for p in reply.json()["predictions"]
                        )
                    else:
                        error = reply.json()["error"]
                        self.outcomes[f"{reply.status_code} {error['code']}"] += 1
                        self.hints[error["code"]] = error.get("hint", "")
                        self.retry_after.setdefault(error["code"], set()).add(
                            reply.headers.get("retry-after")
                        )
                time.sleep(0.01)

    def ok(self) -> int:
        with self._lock:
            return self.outcomes["200"]

    def seen(self, outcome: str) -> bool:
        with self._lock:
            return self.outcomes[outcome] > 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=30)


def prepare(home: Path, database_url: str) -> Env:
    train = churn_table()
    with open_registry(Settings(home=home, database_url=database_url)) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_DATABASE_URL=database_url,
        PYTHONPATH=str(REPO),
        PLINTH_SQLITE_BUSY_TIMEOUT_S="0.5",
        PLINTH_STORE_PROBE_S="0.2",
        PLINTH_ALERTS_ENABLED="false",
        PLINTH_CANARY_ANALYSIS="false",
    )
    return Env(home, env)


def logged(store: Store, prediction_id: str) -> bool:
    try:
        store.get_prediction(prediction_id)
    except Exception:
        return False
    return True
