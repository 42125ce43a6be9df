"""What every serving worker applied: contract revisions, worker heartbeats, worker states.

A contract edit appends a ``contract_revisions`` row (the counter workers poll, as they poll
deployment revisions); each worker keeps a heartbeat in ``workers`` and, per model, the
deployment revision it applied or failed to apply in ``worker_states`` — what ``plinth
deploy`` waits on and the ``deployment_not_applied`` alert reads.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "name", "version", "revision", name="uq_contract_revisions_name_version_revision"
        ),
    )
    op.create_table(
        "workers",
        sa.Column("worker", sa.Text, primary_key=True),
        sa.Column("replica", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "worker_states",
        sa.Column("worker", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("revision_id", sa.Integer, nullable=True),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("contracts", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", "name", name="pk_worker_states"),
    )


def downgrade() -> None:
    op.drop_table("worker_states")
    op.drop_table("workers")
    op.drop_table("contract_revisions")
