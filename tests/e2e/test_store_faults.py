"""The store goes away under load, on a real ``plinth serve``, and comes back.

Three ways it goes: SQLite's write lock held by another process, the disk full (the
server's RLIMIT_FSIZE lowered from outside with prlimit), and PostgreSQL stopped (a
private cluster this test starts with initdb/pg_ctl on a free port, never the shared one).
Each time: predictions fail fast with 503 ``store.unavailable`` and a hint, ``/readyz`` is
not ready, no 500 is ever answered, the server recovers by itself once the store is back,
and every prediction whose 200 reached the caller is in the log.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.store import Store
from tests.e2e.conftest import REPO, Env, start_server, stop_server
from tests.support import churn_model, churn_record, churn_table, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Traffic:
    """Four callers in a loop; what they were told, and every acknowledged prediction id."""

    url: str
    acknowledged: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    hints: dict[str, str] = field(default_factory=dict)
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
                    reply = http.post("/v1/models/churn/predict", json=body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.outcomes[f"client {type(exc).__name__}"] += 1
                    continue
                with self._lock:
                    if reply.status_code == 200:
                        self.outcomes["200"] += 1
                        self.acknowledged.extend(
                            p["prediction_id"] for p in reply.json()["predictions"]
                        )
                    else:
                        error = reply.json()["error"]
                        self.outcomes[f"{reply.status_code} {error['code']}"] += 1
                        self.hints[error["code"]] = error.get("hint", "")
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


def outage(url: str, database_url: str, cut: Callable[[], None], mend: Callable[[], None]) -> str:
    """Traffic through a store outage; returns the store.unavailable hint callers got."""
    with Traffic(url) as traffic:
        wait_for(lambda: traffic.ok() >= 20, "predictions before the outage")
        cut()
        wait_for(lambda: traffic.seen("503 store.unavailable"), "503 store.unavailable")
        during = readyz(url)
        assert during.status_code == 503, during.text
        assert during.json()["status"] == "unavailable"
        assert during.json()["store"]["code"] == "store.unavailable"
        refused_before = traffic.outcomes["503 store.unavailable"]
        wait_for(lambda: traffic.outcomes["503 store.unavailable"] > refused_before + 20, "more")
        mend()
        wait_for(lambda: readyz(url).status_code == 200, "/readyz ready again")
        recovered = traffic.ok()
        wait_for(lambda: traffic.ok() >= recovered + 20, "predictions after the outage")
    # Only two answers, ever: served, or refused because the store was away.
    assert set(traffic.outcomes) == {"200", "503 store.unavailable"}, traffic.outcomes
    with Store(database_url, migrate=False) as store:
        missing = [i for i in traffic.acknowledged if not _logged(store, i)]
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    return traffic.hints["store.unavailable"]


def _logged(store: Store, prediction_id: str) -> bool:
    try:
        store.get_prediction(prediction_id)
    except Exception:
        return False
    return True


def test_sqlite_locked_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "plinth.db"
    env = prepare(tmp_path / "home", f"sqlite:///{db}")
    server = start_server(env)
    locker = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:

        def lock() -> None:
            locker.execute("BEGIN EXCLUSIVE")  # WAL: readers go on, no writer can commit

        def unlock() -> None:
            locker.execute("ROLLBACK")

        hint = outage(server.url, f"sqlite:///{db}", lock, unlock)
        assert "write lock" in hint
    finally:
        locker.close()
        stop_server(server)


def _server_pids(root: int) -> list[int]:
    pids = [root]
    with contextlib.suppress(FileNotFoundError):
        for child in Path(f"/proc/{root}/task/{root}/children").read_text().split():
            pids.extend(_server_pids(int(child)))
    return pids


def test_disk_full(tmp_path: Path) -> None:
    db = tmp_path / "plinth.db"
    env = prepare(tmp_path / "home", f"sqlite:///{db}")
    server = start_server(env)
    pids = _server_pids(server.process.pid)
    limits = {pid: resource.prlimit(pid, resource.RLIMIT_FSIZE) for pid in pids}
    try:

        def fill() -> None:  # no file may grow past 1 byte: every write of the store fails
            for pid, (_, hard) in limits.items():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))

        def free() -> None:
            for pid, limit in limits.items():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limit)

        hint = outage(server.url, f"sqlite:///{db}", fill, free)
        assert "full or failing" in hint
    finally:
        with contextlib.suppress(ProcessLookupError):
            for pid, limit in limits.items():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limit)
        stop_server(server)


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary folder on a free port."""

    root: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-o", options,
                  "-l", str(self.root / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w",
                  "stop")  # fmt: skip


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = shutil.which("initdb") or (str(found[-1]) if found else None)
    if initdb is None:
        pytest.skip("initdb is not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root, initdb must run as the postgres user (runuser)")
    root = Path(tempfile.mkdtemp(prefix="plinth-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(root, free_port(), Path(initdb).parent)
    try:
        cluster._run(initdb, "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                     "--no-sync")  # fmt: skip
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_stopped_and_started_again(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    env = prepare(tmp_path / "home", private_postgres.url)
    server = start_server(env)
    try:
        hint = outage(server.url, private_postgres.url, private_postgres.stop,
                      private_postgres.start)  # fmt: skip
        assert f"PostgreSQL running at 127.0.0.1:{private_postgres.port}" in hint
    finally:
        stop_server(server)
