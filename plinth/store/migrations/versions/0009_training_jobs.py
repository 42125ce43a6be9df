"""Training jobs: one row per retraining run, from trigger to rollout outcome (issue 13).

A partial unique index on ``model`` over the rows still ``queued`` or ``running`` makes "a
trigger that fires while a job runs starts nothing" a property of the table: a second insert
for the same model fails on either backend, whoever commits first wins. ``holder`` and
``lease_until`` are the job's lease: a worker renews it while training, and a job whose lease
ran out (its worker was killed) is failed by whichever worker looks next.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holder", sa.Text, nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("gate", sa.JSON, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
    )
    op.create_index("ix_training_jobs_model_created", "training_jobs", ["model", "created_at"])
    op.create_index(
        "ix_training_jobs_one_active",
        "training_jobs",
        ["model"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_training_jobs_one_active", table_name="training_jobs")
    op.drop_index("ix_training_jobs_model_created", table_name="training_jobs")
    op.drop_table("training_jobs")
