"""Opening a store: URLs, SQLite settings, and failures that say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from plinth.errors import ConfigError, StoreError
from plinth.store import Store
from plinth.store.prediction_log import SQLITE_WAL_LIMIT_BYTES as SQLITE_WAL_KEEP_BYTES

UNREACHABLE = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x"


def test_ping_fails_with_store_unavailable_when_unreachable() -> None:
    store = Store(UNREACHABLE, migrate=False)
    try:
        with pytest.raises(StoreError) as unavailable:
            store.ping()
    finally:
        store.close()
    error = unavailable.value
    assert error.code == "store.unavailable"
    assert error.status == 503
    assert "127.0.0.1:1" in error.hint
    assert "s3cret" not in str(error)
    assert isinstance(error.__cause__, sa.exc.OperationalError)


def test_opening_an_unreachable_database_fails_the_same_way() -> None:
    with pytest.raises(StoreError) as unavailable:
        Store(UNREACHABLE)
    assert unavailable.value.code == "store.unavailable"


def test_bare_postgresql_url_uses_psycopg() -> None:
    with Store("postgresql://postgres@127.0.0.1:1/x", migrate=False) as store:
        assert store.dialect == "postgresql"
        with pytest.raises(StoreError) as unavailable:
            store.ping()
    assert unavailable.value.code == "store.unavailable"


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "mysql://root@localhost/plinth",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+aiosqlite:////tmp/plinth.db",
        "postgresql+psycopg2://postgres@127.0.0.1/x",
    ],
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as bad:
        Store(url)
    assert bad.value.code == "config.database_url"


def test_unknown_sqlite_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        Store(f"sqlite:///{tmp_path / 'plinth.db'}", sqlite_synchronous="SOMETIMES")
    assert bad.value.code == "config.sqlite_synchronous"


def test_sqlite_creates_its_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "plinth.db"

    with Store(f"sqlite:///{path}", sqlite_synchronous="normal") as store:
        assert store.dialect == "sqlite"
        store.ping()
        # White-box: per-connection settings can only be seen from one of the store's own.
        with store._engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_sqlite_wal_is_cut_back_once_a_checkpoint_catches_up(tmp_path: Path) -> None:
    # A burst of commits that no checkpoint keeps up with grows the WAL; it must not keep
    # that size after the burst (it did: 262 MB for good after 40 s at 3,250 req/s).
    path = tmp_path / "plinth.db"
    wal = tmp_path / "plinth.db-wal"
    with Store(f"sqlite:///{path}") as store, store._engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")  # the burst: nothing catches up
        conn.exec_driver_sql("CREATE TABLE burst (data BLOB)")
        conn.commit()
        for _ in range(SQLITE_WAL_KEEP_BYTES // 2**20 + 8):
            conn.exec_driver_sql("INSERT INTO burst VALUES (zeroblob(1048576))")
            conn.commit()
        grown = wal.stat().st_size
        assert conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").first()[0] == 0
        conn.exec_driver_sql("INSERT INTO burst VALUES (x'00')")  # starts the WAL over
        conn.commit()
        after = wal.stat().st_size
    assert grown > SQLITE_WAL_KEEP_BYTES >= after


def test_sqlite_defaults_to_normal_synchronous_and_full_can_be_asked_for(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'plinth.db'}") as store, store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    url = f"sqlite:///{tmp_path / 'full.db'}"
    with Store(url, sqlite_synchronous="FULL") as store, store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_sqlite_folder_that_cannot_exist_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(StoreError) as unavailable:
        Store(f"sqlite:///{blocker / 'sub' / 'plinth.db'}")
    assert unavailable.value.code == "store.unavailable"
    assert "PLINTH_HOME" in unavailable.value.hint
