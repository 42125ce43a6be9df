"""The store works through PgBouncer in transaction mode, the usual pooler in front of a
PostgreSQL shared by many replicas: no session state is relied on between transactions
(no server-side prepared statements, advisory locks only transaction-scoped)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from plinth.store import Store
from plinth.store.feedback import FeedbackStore
from tests.store.test_store import prediction, version_record
from tests.support import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def bouncer_url(database_url: str) -> Iterator[str]:
    """``database_url`` reached through a PgBouncer that resets every server connection
    after each transaction, so anything a session kept would be gone."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PgBouncer pools PostgreSQL connections")
    if not Path(PGBOUNCER).exists():
        pytest.skip("needs Debian's pgbouncer package (make system-deps installs it)")
    url = make_url(database_url)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="plinth-pgbouncer-"))
    folder.chmod(0o777)  # PgBouncer drops root for the postgres user
    (folder / "users.txt").write_text(f'"{url.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={url.host} port={url.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
server_reset_query = DISCARD ALL
server_reset_query_always = 1
default_pool_size = 4
logfile = {folder / "pgbouncer.log"}
"""
    )
    for f in folder.iterdir():
        f.chmod(0o666)
    proc = subprocess.Popen([PGBOUNCER, "-u", "postgres", str(folder / "pgbouncer.ini")])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_store_works_through_pgbouncer_in_transaction_mode(bouncer_url: str) -> None:
    with Store(bouncer_url) as store:  # migrations run through it too
        store.add_version(version_record(name="iris"))
        appender = store.prediction_appender()
        try:
            for batch in range(8):  # the same statements many times: no prepared statements
                appender.append([prediction(batch * 10 + i, key=f"k{i}") for i in range(10)])
        finally:
            appender.close()
        feedback = FeedbackStore(store)
        for _ in range(8):
            assert store.get_prediction(prediction(5).id).key == "k5"
            assert len(store.list_predictions("iris", limit=5)) == 5
            assert len(feedback.predictions_by_key("iris", ["k1"])["k1"]) == 8
        assert store.count_predictions() == 80
        store.ensure_log_partitions()
        assert store.prune_predictions(prediction(40).ts) == 40


def test_pool_size_settings_reach_the_connection_pool(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool settings are PostgreSQL's")
    from plinth.config.settings import Settings
    from plinth.runtime import Runtime

    settings = Settings(database_url=database_url, database_pool_size=2, database_max_overflow=1)
    with Runtime.open(settings) as runtime:
        pool = runtime.store._engine.pool
        assert (pool.size(), pool._max_overflow) == (2, 1)  # type: ignore[attr-defined]
