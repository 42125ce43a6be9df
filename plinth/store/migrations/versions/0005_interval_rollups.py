"""Hourly roll-ups of interval profiles: an index to find the rows still to roll up or prune.

Roll-ups live in ``interval_profiles`` itself (``seconds = 3600``, ``worker = 'rollup'``), so
a report reads minute rows and hour rows in one statement and sees one consistent snapshot.
The roll-up job and ``plinth prune`` select rows by resolution and age across all models;
this index serves both.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_interval_profiles_seconds_start", "interval_profiles", ["seconds", "start"])


def downgrade() -> None:
    op.drop_index("ix_interval_profiles_seconds_start", table_name="interval_profiles")
