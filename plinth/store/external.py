"""Reading a training table from someone else's PostgreSQL database (``[models.NAME.training.data]
sql`` on ``url``): the one place outside Plinth's own store where SQL runs, so it lives here.

The query runs in a read-only transaction on a connection of its own (no pool), and every
failure becomes a ``data.unreadable`` error that names the URL without its password.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc

from plinth.errors import UnreadableDataError


def read_sql(url: str, query: str) -> pd.DataFrame:
    """The rows of ``query`` on the PostgreSQL database at ``url``."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise UnreadableDataError(f"sql sources run on PostgreSQL only, not {parsed.drivername}")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(parsed, poolclass=sa.NullPool)
    where = parsed.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            return pd.read_sql_query(sa.text(query), conn)
    except (exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        # pandas wraps the query's failure in its own DatabaseError; the database's words
        # are on the SQLAlchemy error underneath (its ``orig``).
        cause = error.__cause__ if isinstance(error, pd.errors.DatabaseError) else error
        cause = cause if isinstance(cause, exc.SQLAlchemyError) else error
        raise UnreadableDataError(
            f"Could not read the training query from {where}: {type(cause).__name__}: "
            f"{str(getattr(cause, 'orig', cause)).strip()}",
            hint="Check sql and url in [models.NAME.training.data]: the query runs in a "
            "read-only transaction, as the URL's user.",
        ) from error
    finally:
        engine.dispose()
