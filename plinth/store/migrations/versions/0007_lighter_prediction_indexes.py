"""Two fewer index entries per logged prediction.

Every logged prediction paid for four index entries: the primary key, ``(model, ts,
version)``, ``(ts)`` and ``(model, key)``. ``(ts)`` served only the all-models listing and the
retention prune: the listing now walks the primary key (ULIDs sort by time) and the prune
reads old rows in chunks from the start of the table, where they lie. ``(model, key)`` now
holds only the rows that have a key, so requests without one (most traffic) add nothing to it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_KEY = sa.text("key IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_predictions_ts", table_name="predictions")
    op.drop_index("ix_predictions_model_key", table_name="predictions")
    op.create_index(
        "ix_predictions_model_key",
        "predictions",
        ["model", "key"],
        sqlite_where=_HAS_KEY,
        postgresql_where=_HAS_KEY,
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_model_key", table_name="predictions")
    op.create_index("ix_predictions_model_key", "predictions", ["model", "key"])
    op.create_index("ix_predictions_ts", "predictions", ["ts"])
