"""Automated canary analysis end to end: a real ``plinth serve`` judges canaries under traffic.

A canary failing one request in five is rolled back by the background analyzer with the
evidence recorded; a good canary is then promoted. Short profile and analysis intervals keep
it to seconds; nothing here asserts on speed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.canary_support import FlakyModel, LinearModel, records
from tests.e2e.conftest import Env, Server
from tests.rollout_support import register

pytestmark = pytest.mark.e2e

POLICY = ("--min-requests", "100", "--min-duration", "2")


def _load(url: str, stop: threading.Event, seed: int, statuses: list[int]) -> None:
    pending = records(seed, 100_000)
    with httpx.Client(timeout=30) as client:
        for i, record in enumerate(pending):
            if stop.is_set():
                return
            reply = client.post(
                f"{url}/v1/models/m/predict", json={"records": [record], "key": f"k{seed}-{i}"}
            )
            statuses.append(reply.status_code)


def _wait_for(plinth_env: Env, action: str, timeout_s: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        history = json.loads(plinth_env.cli("history", "m", "--json").stdout)
        if history[0]["action"] == action:
            return dict(history[0])
        time.sleep(0.5)
    raise AssertionError(f"no {action} within {timeout_s} s: {history[0]}")


def test_a_flaky_canary_is_rolled_back_and_a_good_one_promoted(
    plinth_env: Env, serve: type[Server]
) -> None:
    settings = Settings(home=plinth_env.home, database_url=plinth_env.env["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        register(registry, "m", LinearModel())
        register(registry, "m", FlakyModel())
        register(registry, "m", LinearModel(offset=0.01))
    plinth_env.env["PLINTH_PROFILE_INTERVAL_S"] = "0.5"
    plinth_env.env["PLINTH_CANARY_INTERVAL_S"] = "1"
    plinth_env.cli("deploy", "m", "1", "--reason", "start")
    server = serve("--workers", "2")

    stop = threading.Event()
    statuses: list[int] = []
    threads = [
        threading.Thread(target=_load, args=(server.url, stop, n, statuses), daemon=True)
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        plinth_env.cli("deploy", "m", "2", "--canary", "30", *POLICY, "--reason", "try 2")
        rolled_back = _wait_for(plinth_env, "auto-rollback")
        plinth_env.cli("deploy", "m", "3", "--canary", "30", "--reason", "try 3")
        promoted = _wait_for(plinth_env, "auto-promote")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert rolled_back["who"] == "canary-analysis"
    assert rolled_back["spec"]["champion"] == 1 and rolled_back["spec"]["canary"] is None
    evidence = rolled_back["evidence"]
    assert evidence["decision"] == "rollback" and evidence["canary"]["version"] == 2
    checks = {c["name"]: c for c in evidence["checks"]}
    assert checks["error_rate"]["passed"] is False
    assert checks["error_rate"]["canary"] > 0.1 and checks["error_rate"]["champion"] == 0.0
    assert evidence["canary"]["requests"] >= 100 and evidence["champion"]["requests"] >= 100

    # The policy from the flags stays with the deployment, so the good canary is judged alike.
    assert promoted["spec"]["champion"] == 3 and promoted["spec"]["canary"] is None
    assert promoted["evidence"]["decision"] == "promote"
    assert promoted["evidence"]["canary"]["errors"] == 0
    assert all(c["passed"] is not False for c in promoted["evidence"]["checks"])
    assert 503 in statuses and 200 in statuses  # the flaky canary really failed requests

    shown = plinth_env.cli("history", "m").stdout
    assert "auto-rollback" in shown and "auto-promote" in shown
    assert "error_rate" in shown and "FAIL" in shown
    assert "has no live canary" in plinth_env.cli("canary", "m").stdout
