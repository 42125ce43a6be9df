"""PostgreSQL notifications of new deployment revisions: heard at once, and heard again
(as "something may have changed") after the listening connection is lost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from plinth.store import Store
from plinth.store.deployments import CHANNEL, DeploymentStore, NewRevision
from tests.store.test_store import version_record


def _append(deployments: DeploymentStore, champion: int) -> None:
    revision = NewRevision({"champion": champion}, "deploy", "test", "", datetime.now(UTC))
    deployments.append("m", lambda _latest: revision)


def test_a_committed_revision_is_heard_and_a_lost_connection_comes_back(store: Store) -> None:
    store.add_version(version_record(name="m"))  # revisions belong to a registered model
    deployments = DeploymentStore(store)
    if store.dialect != "postgresql":
        assert deployments.listen(lambda: None) is None  # SQLite: polling only
        return
    heard = threading.Semaphore(0)
    listener = deployments.listen(heard.release)
    assert listener is not None
    try:
        assert listener.listening.wait(10)
        _append(deployments, 1)
        assert heard.acquire(timeout=10)
        with store.write_engine.begin() as conn:  # the listener's connection dies
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = :listen"
                ),
                {"listen": f"LISTEN {CHANNEL}"},
            )
        assert heard.acquire(timeout=15)  # reconnected: told something may have changed
        assert listener.listening.wait(10)
        _append(deployments, 2)
        assert heard.acquire(timeout=10)
    finally:
        listener.stop()
    assert not listener.listening.is_set()
