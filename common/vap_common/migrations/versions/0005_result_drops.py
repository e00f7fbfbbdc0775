"""result_drops: what each runner run dropped, reported to the API.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A live runner that cannot deliver for longer than its undelivered-results budget lasts drops its
oldest results and reports the run's totals in a status event (``StatusEvent.drops``). The inbox
keeps the largest totals per (scenario, run), so a redelivered or late report changes nothing, and
GET /scenario shows them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "result_drops",
        sa.Column("scenario_uuid", UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("first_frame", sa.BigInteger(), nullable=False),
        sa.Column("last_frame", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("scenario_uuid", "run_id"),
    )


def downgrade() -> None:
    op.drop_table("result_drops")
