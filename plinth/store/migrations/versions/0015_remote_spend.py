"""What remote models cost: token and cost sums per interval profile, and spend per day.

``interval_profiles.usage`` holds one interval's calls, cached answers, prompt and
completion tokens and cost (a JSON object, NULL for a model that is not remote), added up
like every other count of the row. ``remote_spend`` holds the money spent per model name per
UTC day, one row each, added to atomically by every worker and replica, so a daily budget
is one total for the whole deployment.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: no table rewrite on PostgreSQL, a plain ADD COLUMN on SQLite.
    op.add_column("interval_profiles", sa.Column("usage", sa.JSON, nullable=True))
    op.create_table(
        "remote_spend",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("remote_spend")
    with op.batch_alter_table("interval_profiles") as batch:
        batch.drop_column("usage")
