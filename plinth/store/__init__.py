"""The only code that speaks SQL: SQLAlchemy Core tables, Alembic migrations, one Store.

SQLite in WAL mode by default (``$PLINTH_HOME/plinth.db``); PostgreSQL when the URL says so.
Everything above this layer talks in the plain records of ``plinth.store.records``.
"""

from plinth.store.records import ModelSummary, PredictionRecord, VersionRecord
from plinth.store.store import Store

__all__ = ["ModelSummary", "PredictionRecord", "Store", "VersionRecord"]
