"""Alembic environment: runs on the connection the store hands over, never from an ini file.

The store opens the transaction and takes the migration lock before calling Alembic, so
this file only configures the context on that connection and runs the scripts inside it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from plinth.store.schema import VERSION_TABLE, metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "plinth migrations run through plinth.store.Store, which passes a connection; "
            "running `alembic` by hand is not supported"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode rebuilds tables for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        # The store emits BEGIN itself on SQLite too, so DDL there is transactional as well.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("plinth migrations do not support offline (--sql) mode")
run_migrations_online()
