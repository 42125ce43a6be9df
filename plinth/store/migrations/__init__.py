"""Alembic migrations for the store, run from code: no ``alembic.ini`` on anyone's machine.

``Store`` decides when to upgrade and holds the lock; this module only knows where the
scripts are and how to point Alembic at a connection that is already in a transaction.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from plinth.store.schema import VERSION_TABLE

SCRIPT_LOCATION = Path(__file__).parent


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    return config


def known_revisions() -> tuple[str | None, set[str]]:
    """The newest revision these scripts reach, and every revision they know."""
    scripts = ScriptDirectory.from_config(_config())
    return scripts.get_current_head(), {script.revision for script in scripts.walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def upgrade(conn: Connection, target: str = "head") -> None:
    """Run every pending script (up to ``target``) inside the caller's transaction."""
    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, target)
