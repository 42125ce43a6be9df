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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plinth.store import Store
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.faults_support import Traffic, logged, prepare, readyz, wait_for
from tests.support import free_port

pytestmark = pytest.mark.e2e


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
    # Every refusal said when to come back: a passing outage, so a Retry-After in seconds.
    waits = traffic.retry_after["store.unavailable"]
    assert all(w is not None and w.isdigit() and int(w) >= 1 for w in waits), waits
    with Store(database_url, migrate=False) as store:
        missing = [i for i in traffic.acknowledged if not logged(store, i)]
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    return traffic.hints["store.unavailable"]


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
