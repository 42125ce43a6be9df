"""Alembic migrations for the store, run from code: no ``alembic.ini`` on anyone's machine.

``Store`` decides when to upgrade and holds the lock; this module only knows where the
scripts are and how to point Alembic at a connection that is already in a transaction.

Every process opens the store, and almost always the database is already at the newest
revision. ``is_at_newest`` answers that with one query and a look at the scripts' names,
without importing Alembic or running its scripts (a third of ``plinth models``'s start-up);
Alembic is imported only when there is something to decide or do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from plinth.store.schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).parent
_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    return config


def known_revisions() -> tuple[str | None, set[str]]:
    """The newest revision these scripts reach, and every revision they know."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return scripts.get_current_head(), {script.revision for script in scripts.walk_revisions()}


def newest_script_revision() -> str | None:
    """The highest revision id written in the scripts, read as text, not run.

    Scripts are numbered (0001, 0002, …) and each follows the ones before, so the highest
    is the head (``tests/store/test_migrations.py`` checks this against Alembic). None when
    a script does not state its revision plainly: then Alembic decides.
    """
    found = []
    for path in (SCRIPT_LOCATION / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        match = _REVISION.search(path.read_text(encoding="utf-8"))
        if match is None:
            return None
        found.append(match[1])
    return max(found, default=None)


def is_at_newest(conn: Connection) -> bool:
    """True when the database's one revision row is the newest script's: nothing to do."""
    newest = newest_script_revision()
    if newest is None or not sa.inspect(conn).has_table(VERSION_TABLE):
        return False
    rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return list(rows) == [newest]


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def upgrade(conn: Connection, target: str = "head") -> None:
    """Run every pending script (up to ``target``) inside the caller's transaction."""
    from alembic import command

    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, target)
