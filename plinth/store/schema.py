"""The tables, as SQLAlchemy Core metadata: the store's queries are written against these.

Migrations in ``plinth/store/migrations`` create the same tables; keep the two in step
(``tests/store/test_schema.py`` compares them on both backends).

JSON columns use the plain ``JSON`` type on every backend, PostgreSQL included, on purpose:
``jsonb`` re-encodes numbers as ``numeric`` and sorts object keys, so ``1e16`` comes back as
the integer ``10000000000000000``, ``-0.0`` loses its sign and a contract's field order is
lost. ``json`` keeps the text exactly as written, which is what a replayable log needs, and
it is cheaper to write. Nothing queries inside these documents today; if something must,
add an expression index or a ``jsonb`` column in a migration.

Strings are ``TEXT`` throughout: length limits belong to the services that validate input,
and ``varchar(n)`` would fail on PostgreSQL where SQLite silently accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

# Alembic's bookkeeping table, under our own name so Plinth can share a PostgreSQL database
# with an application that keeps its own Alembic history.
VERSION_TABLE = "plinth_alembic_version"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, on every backend.

    SQLite has no time zone type and hands back naive values; PostgreSQL hands back the
    session's zone. Both are normalised to UTC here so callers never see a naive datetime.
    Naive input is refused: guessing its zone would silently shift the log.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the store; "
                "pass an aware one, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        # SQLite stores the wall-clock fields as fixed-width text; stripping the zone keeps
        # every stored value in one format, so text comparison orders them correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    # none_as_null=False: a Python None inside a document is JSON null, never SQL NULL.
    return sa.JSON(none_as_null=False)


models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.Text, sa.ForeignKey("models.name"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("flavor", sa.Text, nullable=False),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    # (name, version) is the natural key; it doubles as the index for "latest version".
    sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    sa.UniqueConstraint("name", "sha256", name="uq_model_versions_name_sha256"),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # a ULID: sorts by time
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=True),
    sa.Column("input", _json(), nullable=False),
    sa.Column("features", _json(), nullable=False),
    sa.Column("output", _json(), nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("warnings", _json(), nullable=False),
    # No foreign key to model_versions: the log is written on the hot path and pruned on
    # its own schedule; a versions lookup per row would cost more than it protects.
    sa.Index("ix_predictions_model_ts", "model", "ts"),
    sa.Index("ix_predictions_ts", "ts"),
)
