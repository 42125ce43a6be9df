"""On PostgreSQL the prediction log becomes a table partitioned by day (``partitions.py``).

The existing table is renamed, an empty partitioned ``predictions`` takes its name (same
columns, same indexes, primary key ``(id, ts)`` because a partitioned table's unique keys
must hold the partition key), daily partitions are created for every day that has rows and
for the week ahead (not for the empty days between), plus the default partition, and the rows
are copied over in one statement before the old table is dropped. The copy runs inside the
migration's transaction: a failure leaves the old table as it was. SQLite is left alone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op

from plinth.store import partitions

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "predictions_unpartitioned"
_INDEXES = ("ix_predictions_model_ts_version", "ix_predictions_model_key")


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE predictions RENAME TO {_OLD}")
    op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT predictions_pkey TO {_OLD}_pkey")
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
    op.execute(f"CREATE TABLE predictions (LIKE {_OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)")
    op.execute("ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id, ts)")
    op.execute("CREATE INDEX ix_predictions_model_ts_version ON predictions (model, ts, version)")
    op.execute(
        "CREATE INDEX ix_predictions_model_key ON predictions (model, key) WHERE key IS NOT NULL"
    )
    op.execute(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF predictions DEFAULT")
    logged = conn.exec_driver_sql(f"SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM {_OLD}")
    days = [day for (day,) in logged]
    partitions.ensure_days(conn, [*days, *partitions.around(datetime.now(UTC))])
    op.execute(f"INSERT INTO predictions SELECT * FROM {_OLD}")
    op.execute(f"DROP TABLE {_OLD}")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE {_OLD} (LIKE predictions INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {_OLD} SELECT * FROM predictions")
    op.execute("DROP TABLE predictions")  # its partitions go with it
    op.execute(f"ALTER TABLE {_OLD} RENAME TO predictions")
    op.execute("ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id)")
    op.execute("CREATE INDEX ix_predictions_model_ts_version ON predictions (model, ts, version)")
    op.execute(
        "CREATE INDEX ix_predictions_model_key ON predictions (model, key) WHERE key IS NOT NULL"
    )
