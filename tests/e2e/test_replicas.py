"""Replicas on one PostgreSQL behind a real HAProxy: a rollback reaches all of them within a
second, SIGKILL of one under load loses no acknowledged prediction and the balancer routes
around it, and a replica started later joins without restarting the others.

The replicas are separate ``plinth serve`` processes on loopback ports, as they would be on
separate hosts (each names itself with PLINTH_REPLICA); HAProxy (Debian's package) checks
``/readyz`` every 200 ms.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.rollout.applied import LIVE_S
from plinth.store import Store
from plinth.store.feedback import FeedbackStore
from tests.e2e.conftest import Env, Server, start_server, stop_server
from tests.rollout_support import ConstantModel, register
from tests.support import free_port

pytestmark = pytest.mark.e2e

SWITCH_BUDGET_S = 1.0
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
RECORD = {"records": [{"a": 1.0, "b": 2.0}]}


@dataclass(frozen=True)
class Reply:
    status: int
    replica: str
    version: int
    prediction_id: str
    sent: float


@pytest.fixture
def pg_env(plinth_env: Env) -> Env:
    if not plinth_env.env["PLINTH_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("replicas on several hosts share PostgreSQL, not a SQLite file")
    if not Path(HAPROXY).exists():
        pytest.skip("needs Debian's haproxy package (make system-deps installs it)")
    return plinth_env


def _replica(env: Env, name: str, port: int | None = None) -> Server:
    named = replace(env, env={**env.env, "PLINTH_REPLICA": name})
    return start_server(named, port=port)


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[tuple[int, list[int], Path]]:
    """HAProxy's port, the four backend ports it checks (the fourth starts empty), its config."""
    front = free_port()
    backends = [free_port() for _ in range(4)]
    config = tmp_path / "haproxy.cfg"
    servers = "\n".join(
        f"  server r{i + 1} 127.0.0.1:{port} check" for i, port in enumerate(backends)
    )
    config.write_text(
        f"""global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 2
  option redispatch
  retry-on conn-failure empty-response
frontend plinth_front
  bind 127.0.0.1:{front}
  default_backend plinth
backend plinth
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 200ms fall 2 rise 1
{servers}
"""
    )
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([HAPROXY, "-f", str(config), "-db"], stdout=log, stderr=log)
    try:
        yield front, backends, tmp_path / "haproxy.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _post(client: httpx.Client, url: str) -> Reply:
    sent = time.monotonic()
    try:
        reply = client.post(f"{url}/v1/models/m/predict", json=RECORD)
    except httpx.HTTPError:
        return Reply(-1, "", -1, "", sent)
    body = reply.json() if reply.status_code == 200 else {}
    ids = [p.get("prediction_id") for p in body.get("predictions", [])]
    return Reply(
        reply.status_code,
        reply.headers.get("x-plinth-replica", ""),
        int(body.get("version", -1)),
        str(ids[0]) if ids else "",
        sent,
    )


def _seen_through(url: str, want: set[str], deadline_s: float) -> set[str]:
    seen: set[str] = set()
    end = time.monotonic() + deadline_s
    with httpx.Client(timeout=10, headers={"connection": "close"}) as client:
        while time.monotonic() < end and not want <= seen:
            reply = _post(client, url)
            if reply.status == 200:
                seen.add(reply.replica)
            else:
                time.sleep(0.05)
    return seen


def _all_serve(servers: list[Server], version: int, deadline_s: float) -> float:
    """Seconds until every replica, asked directly, answers with ``version``."""
    started = time.monotonic()
    pending = {s.url for s in servers}
    with httpx.Client(timeout=10) as client:
        while pending and time.monotonic() - started < deadline_s:
            for url in list(pending):
                if _post(client, url).version == version:
                    pending.discard(url)
            time.sleep(0.01)
    assert not pending, f"{pending} still not on version {version} after {deadline_s} s"
    return time.monotonic() - started


def test_replicas_behind_haproxy(
    pg_env: Env, balancer: tuple[int, list[int], Path], tmp_path: Path
) -> None:
    front, ports, haproxy_log = balancer
    lb = f"http://127.0.0.1:{front}"
    database_url = pg_env.env["PLINTH_DATABASE_URL"]
    with open_registry(Settings(home=pg_env.home, database_url=database_url)) as registry:
        for value in (1.0, 2.0):
            register(registry, "m", ConstantModel(value))
    pg_env.cli("deploy", "m", "1", "--reason", "start")
    replicas = [_replica(pg_env, f"r{i + 1}", ports[i]) for i in range(3)]
    try:
        seen = _seen_through(lb, {"r1", "r2", "r3"}, 30)
        assert seen == {"r1", "r2", "r3"}, haproxy_log.read_text()

        # A deploy and a rollback, each made on one machine, reach every replica.
        pg_env.cli("deploy", "m", "2", "--reason", "new")
        assert _all_serve(replicas, 2, 10) < SWITCH_BUDGET_S
        pg_env.cli("rollback", "m", "--reason", "back")
        lag = _all_serve(replicas, 1, 10)
        (tmp_path / "rollback-lag.txt").write_text(f"{lag:.3f}\n")
        assert lag < SWITCH_BUDGET_S

        # SIGKILL one replica under load through the balancer.
        replies: list[Reply] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    replies.append(_post(client, lb))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        killed_at = time.monotonic()
        os.killpg(replicas[1].process.pid, signal.SIGKILL)
        replicas[1].process.wait()
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join()

        ok = [r for r in replies if r.status == 200]
        failed = [r for r in replies if r.status != 200]
        print(f"rollback lag {lag:.3f} s; {len(ok)} ok, {len(failed)} failed around the kill")
        assert len(ok) > 50
        # Only requests in flight on the killed replica may fail (HAProxy retries most).
        assert len(failed) <= 8, failed
        # The balancer routes around it: nothing from r2 once its health check failed.
        settled = killed_at + 1.0
        assert all(r.replica != "r2" for r in ok if r.sent > settled)
        assert all(r.status == 200 for r in replies if r.sent > settled)
        # Every acknowledged prediction is in the shared log, whichever replica answered.
        with Store(database_url) as store:
            found = FeedbackStore(store).predictions_by_id([r.prediction_id for r in ok])
        assert set(found) == {r.prediction_id for r in ok}

        # A replica started later joins; the others keep running untouched.
        replicas.append(_replica(pg_env, "r4", ports[3]))
        assert "r4" in _seen_through(lb, {"r4"}, 20)
        assert all(s.process.poll() is None for i, s in enumerate(replicas) if i != 1)
    finally:
        for server in replicas:
            stop_server(server)


def test_a_notification_applies_a_deploy_long_before_the_next_poll(plinth_env: Env) -> None:
    # Polling every minute: only PostgreSQL's LISTEN/NOTIFY can bring the change sooner.
    database_url = plinth_env.env["PLINTH_DATABASE_URL"]
    if not database_url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's")
    with open_registry(Settings(home=plinth_env.home, database_url=database_url)) as registry:
        for value in (1.0, 2.0):
            register(registry, "m", ConstantModel(value))
    plinth_env.cli("deploy", "m", "1", "--reason", "start")
    slow = replace(plinth_env, env={**plinth_env.env, "PLINTH_DEPLOYMENT_POLL_S": "60"})
    server = start_server(slow)
    try:
        assert _all_serve([server], 1, 10) < 10
        time.sleep(LIVE_S + 1)  # longer than a worker stays live without a heartbeat
        done = plinth_env.cli("deploy", "m", "2", "--reason", "new")
        assert _all_serve([server], 2, 10) < SWITCH_BUDGET_S
        # The 60 s poll did not silence the heartbeat: the deploy waited for the worker.
        assert "applied by 1 worker" in done.stdout, done.stdout
    finally:
        stop_server(server)
