"""One settings object, read from ``PLINTH_*`` environment variables at the edge.

Every field has a default that works on a laptop; the core never reads the environment,
it receives values from here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings; build once with ``Settings()`` and pass down."""

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="ignore")

    home: Path = Field(
        default=Path(".plinth"), description="Where the database and artifacts live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite at $PLINTH_HOME/plinth.db.",
    )
    max_records_per_request: int = 10_000
    max_body_bytes: int = 64 * 1024 * 1024
    log_max_batch_rows: int = 5_000
    max_batch_size: int = 64
    log_predictions: bool = Field(
        default=True, description="Write every prediction to the log (off only for benchmarks)."
    )
    request_timeout_s: float = Field(
        default=30.0, description="Longest a request may wait for the model before a 503."
    )
    sqlite_synchronous: str = Field(
        default="FULL", description="SQLite durability: FULL survives power loss, NORMAL a crash."
    )
    retention_days: int = 30

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    def resolved_database_url(self) -> str:
        """The database to use: the explicit URL, else SQLite inside ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'plinth.db').resolve()}"
