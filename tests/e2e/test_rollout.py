"""Rollout under load: deploy / canary / promote / rollback in a loop against two workers.

Zero failed requests, and each change visible in every worker's replies within one second
of the command returning. The measured switch lags are written to ``rollout-lag.json`` in
the test's folder and printed (``pytest -s``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import Env, Server
from tests.rollout_support import ConstantModel, register

pytestmark = pytest.mark.e2e

SWITCH_BUDGET_S = 1.0


@dataclass(frozen=True)
class Reply:
    sent: float
    received: float
    status: int
    worker: str
    revision: int
    version: int
    route: str
    wall_sent: float = 0.0  # time.time(), to compare with the revision's stored created_at


def _load(url: str, stop: threading.Event, out: list[Reply], seed: int) -> None:
    # A new connection per request, so the kernel spreads requests over both workers.
    with httpx.Client(timeout=30, headers={"connection": "close"}) as client:
        i = 0
        while not stop.is_set():
            i += 1
            sent, wall_sent = time.monotonic(), time.time()
            try:
                reply = client.post(
                    f"{url}/v1/models/m/predict",
                    json={"records": [{"a": 1.0, "b": 2.0}], "key": f"user-{seed}-{i}"},
                )
            except httpx.HTTPError:
                out.append(Reply(sent, time.monotonic(), -1, "", -1, -1, ""))
                continue
            body = reply.json() if reply.status_code == 200 else {}
            out.append(
                Reply(
                    sent,
                    time.monotonic(),
                    reply.status_code,
                    reply.headers.get("x-plinth-worker", ""),
                    int(reply.headers.get("x-plinth-revision", "0")),
                    int(body.get("version", -1)),
                    str(body.get("route", "")),
                    wall_sent,
                )
            )


def test_deploy_promote_rollback_loop_under_load_never_fails_a_request(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    settings = Settings(home=plinth_env.home, database_url=plinth_env.env["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        for value in (1.0, 2.0, 3.0):
            register(registry, "m", ConstantModel(value))
    plinth_env.cli("deploy", "m", "1", "--reason", "start")
    server = serve("--workers", "2")

    replies: list[Reply] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(server.url, stop, replies, n), daemon=True)
        for n in range(4)
    ]
    for thread in threads:
        thread.start()

    steps = [
        ("deploy", "m", "2"),
        ("deploy", "m", "3", "--canary", "50"),
        ("promote", "m"),
        ("rollback", "m"),
        ("rollback", "m"),
        ("deploy", "m", "1"),
        ("rollback", "m"),
    ]
    changes: list[tuple[str, int, float]] = []  # (command, revision, when it returned)
    try:
        workers: set[str] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # both workers up and reached
            time.sleep(0.1)
            workers = {r.worker for r in replies if r.status == 200}
        for step in steps:
            done = plinth_env.cli(*step)
            returned = time.monotonic()
            revision = int(done.stdout.split("revision ")[1].split(":")[0])
            changes.append((step[0], revision, returned))
            _wait_until_every_worker_serves(replies, workers, revision, returned)
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failed = [r for r in replies if r.status != 200]
    assert failed == [], f"{len(failed)} of {len(replies)} requests failed: {failed[:5]}"
    assert len(workers) == 2, "the load did not reach both workers"

    history = json.loads(plinth_env.cli("history", "m", "--json").stdout)
    specs = {h["revision"]: h["spec"] for h in history}
    for r in replies:
        spec = specs[r.revision]
        canary = spec["canary"]
        expected = {spec["champion"]} | ({canary["version"]} if canary else set())
        assert r.version in expected, (r, spec)
        assert r.route == ("canary" if canary and r.version == canary["version"] else "champion")

    committed = {
        h["revision"]: datetime.fromisoformat(h["created_at"]).timestamp() for h in history
    }
    lags = []
    for command, revision, returned in changes:
        # After the command returned: what a user sees (the budget asserted below).
        stale = [r for r in replies if r.sent >= returned and r.revision < revision]
        lag = max((r.received - returned for r in stale), default=0.0)
        # After the revision was committed (the CLI then still has to exit): the propagation.
        at = committed[revision]
        stale = [r for r in replies if r.wall_sent >= at and r.revision < revision]
        propagation = max((r.wall_sent + (r.received - r.sent) - at for r in stale), default=0.0)
        lags.append(
            {
                "command": command,
                "revision": revision,
                "stale_after_return_s": round(lag, 3),
                "stale_after_commit_s": round(propagation, 3),
            }
        )
    report = {"requests": len(replies), "workers": sorted(workers), "switches": lags}
    (tmp_path / "rollout-lag.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    slow = [lag for lag in lags if float(lag["stale_after_return_s"]) > SWITCH_BUDGET_S]
    assert slow == [], f"switches slower than {SWITCH_BUDGET_S}s: {slow}"


def _wait_until_every_worker_serves(
    replies: list[Reply], workers: set[str], revision: int, since: float
) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = {r.worker for r in replies[-400:] if r.sent >= since and r.revision >= revision}
        if seen >= workers:
            return
        time.sleep(0.05)
    raise AssertionError(f"revision {revision} did not reach every worker")
