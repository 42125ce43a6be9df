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
    except exc.SQLAlchemyError as error:
        raise UnreadableDataError(
            f"Could not read the training query from {where}: {type(error).__name__}: "
            f"{str(getattr(error, 'orig', error)).strip()}"
        ) from error
    finally:
        engine.dispose()
