"""The audit trail: one row per admin action (forget, token create and revoke, deploy …).

Revision ID: 0014
Revises: the highest of 0011-0013 present (assigned to other branches), else 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
# 0011-0013 were assigned to other branches; whichever order they reach main in, the chain
# stays linear. Once they are all on main this becomes the plain "0013".
_before = sorted(
    p.name[:4] for n in (11, 12, 13) for p in Path(__file__).parent.glob(f"00{n}_*.py")
)
down_revision: str | None = _before[-1] if _before else "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
